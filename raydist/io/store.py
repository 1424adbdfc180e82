"""Exactly-once, resumable output directories (local or s3://), safe for concurrent runs.

    <table>/part-*.parquet   committed rows: one file per table per commit
    _log/<seq>.json          the commit log; entry <seq> is created only if absent: the commit point
    _runs/<run>.json         one record per run: configs, model, versions, state, counts, heartbeat
    _staging/<run>/          a run's Parquet parts before they are committed

A run commits in increments. Each commit merges the increment's staged parts into one file per
table (minus rows of inputs another run committed meanwhile), creates the next log entry (an
exclusive create: `os.link` on local disk, a conditional PUT `If-None-Match: *` on S3; a run that
loses the race re-reads the new entries, drops the ids they hold and tries the next number), then
moves its files into place. Readers list the log: they see whole commits only, and a plain glob
sees each commit of a table as one whole file.

A run's record carries a heartbeat. Recovery (at the start of every run) rolls forward the commits
of dead runs whose moves were cut short and deletes their staging; a run is dead when its driver
ran on this host and is gone, when its heartbeat is older than its lease, or when it ended. The
staging of a live run is never touched.

`--retry-errors` commits list under "removed" the earlier error parts they replace (their staged
rewrites, minus the retried ids, are among the commit's files), so each input keeps at most its
latest error row.

Outputs of raydist before the log (`_runs/<run>.json` holding "files") still read and resume:
those manifests are commits numbered before the log's.
"""

from __future__ import annotations

import json
import os
import posixpath
import time
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from raydist.io.fs import StoreError, check_writable, create_exclusive, full_uri, put_whole, url_to_fs
from raydist.io.runs import is_alive, now_iso
from raydist.io.schema import TABLES, schema_for

LOG, RUNS, STAGING = "_log", "_runs", "_staging"
# fault injection for the tests that kill a driver during a commit's moves: seconds after each move
MOVE_DELAY_S = float(os.environ.get("RAYDIST_FAULT_MOVE_DELAY_S", "0"))


@dataclass
class Taken:
    """What other runs committed while one run works: ids in their log entries up to `upto`."""

    upto: int  # log entries up to this number are in `ids` (or were committed before the run)
    ids: set[str] = field(default_factory=set)


class RunStore:
    def __init__(self, out: str, storage_options: dict[str, Any] | None = None):
        self.out = out.rstrip("/")
        so = dict(storage_options or {})
        if "://" in self.out and not self.out.startswith("file://"):
            so["use_listings_cache"] = False  # other runs write here: a cached listing would be stale
        self.fs, self.root = url_to_fs(self.out, so)
        self.root = self.root.rstrip("/")
        self._entries: list[dict[str, Any]] = []  # the log as read so far (legacy manifests first)
        self._head = -1  # highest log number read; -1: nothing read yet

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def uri(self, *parts: str) -> str:
        """Full URI (with scheme) for writers on other nodes."""
        return full_uri(self.fs, self.path(*parts))

    def check_writable(self) -> None:
        """Fail fast, before any work, if the output cannot be written."""
        check_writable(self.out, self.fs, self.path(RUNS))

    # -- reading -----------------------------------------------------------------------------

    def _read_json(self, p: str) -> dict[str, Any]:
        try:
            with self.fs.open(p, "r") as f:
                return json.load(f)
        except ValueError as e:
            raise StoreError(f"{p} is not valid JSON ({e}); move it aside to continue") from e

    def _ls(self, folder: str, pattern: str = "*") -> list[str]:
        self.fs.invalidate_cache(folder)  # s3fs caches listings: another run may have written since
        return sorted(self.fs.glob(posixpath.join(folder, pattern)))

    def log(self) -> list[dict[str, Any]]:
        """Every commit, in order. Reads only the entries not read before."""
        if self._head < 0:
            for p in self._ls(self.path(RUNS), "*.json"):
                m = self._read_json(p)
                if "files" in m:  # a manifest of raydist before the log: one commit
                    self._entries.append({**m, "seq": 0, "legacy": True})
            self._head = 0
        for p in self._ls(self.path(LOG), "*.json"):
            seq = int(posixpath.basename(p)[:-5])
            if seq > self._head:
                self._entries.append(self._read_json(p))
                self._head = seq
        return self._entries

    def records(self) -> list[dict[str, Any]]:
        """Every run's record (legacy manifests included), oldest first."""
        out = []
        for p in self._ls(self.path(RUNS), "*.json"):
            out.append(self._read_json(p))
        return sorted(out, key=lambda r: r.get("created", ""))

    def record(self, run_id: str) -> dict[str, Any] | None:
        p = self.path(RUNS, f"{run_id}.json")
        try:
            return self._read_json(p)
        except FileNotFoundError:
            return None

    def manifests(self) -> list[dict[str, Any]]:
        """The records of runs that committed anything, in the order of their first commit."""
        order = list(dict.fromkeys(e["run_id"] for e in self.log()))
        records = {r["run_id"]: r for r in self.records()}
        return [records[r] for r in order if r in records]

    def committed_files(self, table: str) -> list[str]:
        """Paths of the committed files of `table`, where they are now (a commit whose moves were
        cut short is read from its staging until a run rolls it forward)."""
        return self._located(self.log(), (table,))

    def _located(
        self, entries: list[dict[str, Any]], tables: tuple[str, ...], skip_rewrites: bool = False
    ) -> list[str]:
        everything = self.log()
        out = []
        for table in tables:
            gone = {n for e in everything for n in e.get("removed", {}).get(table, ())}
            names = [(e, n) for e in entries for n in e["files"].get(table, [])]
            if not names:
                continue
            placed = {posixpath.basename(p) for p in self._ls(self.path(table), "*.parquet")}
            for e, n in names:
                if n in gone or (skip_rewrites and n in e.get("rewrites", {}).get(table, ())):
                    continue
                out.append(self.path(table, n) if n in placed else self.path(STAGING, e["run_id"], table, n))
        return out

    def ids_in(self, files: list[str]) -> list[str]:
        ids: list[str] = []
        for p in files:
            ids += _read_moving(self.fs, p, ["id"]).column("id").to_pylist()
        return ids

    def done_ids(self, tables: tuple[str, ...] = ("clips", "errors")) -> set[str]:
        """Ids already committed in any of `tables` (a result or an error)."""
        return {i for t in tables for i in self.ids_in(self.committed_files(t))}

    # -- runs and their heartbeats -------------------------------------------------------------

    def write_record(self, record: dict[str, Any]) -> None:
        """Write (or replace) a run's record whole: readers never see a torn one."""
        put_whole(self.fs, self.path(RUNS, f"{record['run_id']}.json"), json.dumps(record, indent=2).encode())

    def alive(self, run_id: str) -> bool:
        return is_alive(self.record(run_id))

    def recover(self, me: str | None = None) -> None:
        """Roll forward the cut-short commits of dead runs and delete their staging; leave the
        staging of live runs (and of run `me`) alone."""
        entries = self.log()
        for table in {t for e in entries for t in e.get("removed", {})}:  # deletions cut short
            present = {posixpath.basename(p) for p in self._ls(self.path(table), "*.parquet")}
            for name in present & {n for e in entries for n in e.get("removed", {}).get(table, ())}:
                self._rm(self.path(table, name))
        if not self.fs.exists(self.path(STAGING)):
            return
        for d in self._ls(self.path(STAGING)):
            run_id = posixpath.basename(d.rstrip("/"))
            if run_id == me:
                continue
            if self.alive(run_id):
                print(f"raydist: leaving the staging of run {run_id} alone: it is still running")
                continue
            mine = [e for e in entries if e["run_id"] == run_id]
            for e in mine:
                self._apply(e)
            print(f"raydist: removing staging of {'interrupted' if mine else 'uncommitted'} run {run_id}")
            self._rm(d)
        self._drop_empty_staging()

    # -- committing ------------------------------------------------------------------------------

    def commit(
        self,
        run_id: str,
        number: int,
        parts: dict[str, list[str]],
        ids: list[str],
        taken: Taken,
        done_tables: tuple[str, ...],
        info: dict[str, Any],
        replace_errors_of: set[str] | None = None,
        error_ids: set[str] = frozenset(),  # type: ignore[assignment]
    ) -> tuple[dict[str, Any], set[str]]:
        """Commit staged `parts` (per table, names under _staging/<run>/<table>/) holding the rows
        of `ids`, as commit `number` of run `run_id`. Rows of ids that other runs committed since
        this run started (`taken`, kept up to date here) are left out. `replace_errors_of`: retried
        ids whose older error rows go; `error_ids`: which of `ids` are error rows (for the counts).
        Returns (the log entry, the ids left out)."""
        ids_set, dropped, merged = set(ids), set(), None
        while True:
            entries = list(self.log())
            head = self._head  # this attempt claims head + 1; reads below may see later entries
            new = [e for e in entries if taken.upto < e.get("seq", 0) and e["run_id"] != run_id]
            taken.ids.update(self.ids_in(self._located(new, done_tables, skip_rewrites=True)))
            taken.upto = head
            fresh = ids_set & taken.ids
            if merged is None or fresh - dropped:
                dropped |= fresh
                merged = {t: self._merge(run_id, number, t, names, dropped) for t, names in parts.items()}
            entry: dict[str, Any] = {
                "seq": head + 1,
                "run_id": run_id,
                "commit": number,
                "files": {t: [n] for t, n in merged.items() if n},
                "removed": {},
                "rewrites": {},
                "created": now_iso(),
                **info,
            }
            retried = (replace_errors_of or set()) - dropped
            c = info.get("counts", {})
            if c:  # what this commit holds: the processed inputs minus those another run had
                failed = len(dropped & error_ids)
                entry["counts"] = {
                    "inputs": c["inputs"] - len(dropped),
                    "ok": c["ok"] - (len(dropped) - failed),
                    "failed": c["failed"] - failed,
                    "retried": len(retried),
                    "dropped": len(dropped),
                }
            if retried:
                staged, entry["removed"]["errors"] = self.stage_without("errors", retried, run_id, number)
                entry["files"].setdefault("errors", []).extend(staged)
                entry["rewrites"]["errors"] = staged
            if self._create(self.path(LOG, f"{entry['seq']:08d}.json"), json.dumps(entry, indent=2).encode()):
                break  # else another run took this number: read what it committed and try the next
        self.log()  # (reads our own entry too)
        self._apply(entry)
        for t, names in parts.items():  # the merged parts (a part committed as it is has moved)
            for n in names:
                if n not in entry["files"].get(t, ()):
                    self._rm(self.path(STAGING, run_id, t, n))
        return entry, dropped

    def _merge(self, run_id: str, number: int, table: str, names: list[str], drop: set[str]) -> str | None:
        """The commit's one file of `table` in staging: a lone part as it is, else the parts
        merged (row groups copied, rows of `drop` left out). None when no row is left."""
        staged = [self.path(STAGING, run_id, table, n) for n in names]
        if len(names) == 1 and not drop:
            return names[0]
        name = f"part-{run_id}-c{number:05d}.parquet"
        writer, rows, buf = None, 0, pa.BufferOutputStream()
        for p in staged:
            with self.fs.open(p, "rb") as f:
                pf = pq.ParquetFile(f)
                for g in range(pf.num_row_groups):
                    t = pf.read_row_group(g)
                    if drop:
                        t = t.filter(pc.invert(pc.is_in(t.column("id"), pa.array(sorted(drop), pa.string()))))
                    if not t.num_rows:
                        continue
                    if writer is None:
                        writer = pq.ParquetWriter(buf, t.schema, compression="zstd")
                    writer.write_table(t, row_group_size=t.num_rows)
                    rows += t.num_rows
        if writer is None:
            return None
        writer.close()
        self._write(self.path(STAGING, run_id, table, name), buf.getvalue().to_pybytes())
        return name

    def stage_without(self, table: str, ids: set[str], run_id: str, number: int = 0) -> tuple[list[str], list[str]]:
        """Stage rewrites of the committed parts of `table` that hold any of `ids`, minus those
        rows, for run `run_id`. Returns (staged names, replaced names) for its log entry."""
        staged, replaced = [], []
        for p in self.committed_files(table):
            t = _read_moving(self.fs, p)
            keep = pc.invert(pc.is_in(t.column("id"), pa.array(sorted(ids), pa.string())))
            if pc.all(keep).as_py():
                continue
            replaced.append(posixpath.basename(p))
            rest = t.filter(keep)
            if rest.num_rows:
                name = f"{run_id}-c{number:05d}-rewrite-{posixpath.basename(p)}"
                buf = pa.BufferOutputStream()
                pq.write_table(rest, buf, compression="zstd")
                self._write(self.path(STAGING, run_id, table, name), buf.getvalue().to_pybytes())
                staged.append(name)
        return staged, replaced

    def _write(self, path: str, data: bytes) -> None:
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        with self.fs.open(path, "wb") as f:
            f.write(data)

    def _create(self, path: str, data: bytes) -> bool:
        return create_exclusive(self.fs, path, data)

    def _apply(self, entry: dict[str, Any]) -> None:
        """Move a committed entry's files into place and delete the parts it replaced (both
        idempotent: any run may finish a commit whose moves were cut short)."""
        for table, names in entry["files"].items():
            for name in names:
                self._move(entry["run_id"], table, name)
                time.sleep(MOVE_DELAY_S)
        for table, names in entry.get("removed", {}).items():
            for name in names:
                self._rm(self.path(table, name))

    def _move(self, run_id: str, table: str, name: str) -> None:
        final, staged = self.path(table, name), self.path(STAGING, run_id, table, name)
        if self.fs.exists(final):
            return
        try:
            self.fs.makedirs(self.path(table), exist_ok=True)
            self.fs.mv(staged, final)
        except FileNotFoundError:
            if not self.fs.exists(final):  # not moved by another run meanwhile: lost
                raise StoreError(f"committed file {table}/{name} of run {run_id} is missing from {self.out}") from None

    def _rm(self, p: str) -> None:
        try:
            self.fs.rm(p, recursive=True)
        except FileNotFoundError:
            pass

    def drop_staging(self, run_id: str) -> None:
        self._rm(self.path(STAGING, run_id))
        self._drop_empty_staging()

    def _drop_empty_staging(self) -> None:
        staging = self.path(STAGING)
        try:
            if self.fs.exists(staging) and not self._ls(staging):
                self.fs.rm(staging, recursive=True)
        except FileNotFoundError:
            pass


def _read_moving(fs: fsspec.AbstractFileSystem, path: str, columns: list[str] | None = None) -> pa.Table:
    """Read a committed file that a concurrent roll-forward may be moving from staging into place
    (on S3 the object can vanish between opening and reading)."""
    try:
        with fs.open(path, "rb") as f:
            return pq.read_table(f, columns=columns)
    except FileNotFoundError:
        parts = path.split("/")
        if STAGING not in parts:
            raise
        i = parts.index(STAGING)  # .../_staging/<run>/<table>/<name> -> .../<table>/<name>
        with fs.open("/".join(parts[:i] + parts[i + 2 :]), "rb") as f:
            return pq.read_table(f, columns=columns)


def read_table(
    out: str, table: str, storage_options: dict[str, Any] | None = None, columns: list[str] | None = None
) -> pa.Table:
    """Read one output table (or some of its columns), whole commits only: a commit being made
    is never seen."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; choose from {TABLES}")
    store = RunStore(out, storage_options)
    parts = []
    for p in store.committed_files(table):
        parts.append(_read_moving(store.fs, p, columns))
    if not parts:
        empty = schema_for(table).empty_table()
        return empty.select(columns) if columns else empty
    return pa.concat_tables(parts, promote_options="permissive")

"""Exactly-once, resumable output directories (local or s3://), safe for concurrent runs.

    <table>/<commit>/part-*.parquet   committed rows: one folder per table per commit
    _log/<seq>.json                   the commit log; entry <seq> is created only if absent: the commit point
    _log/<seq>.checkpoint.parquet     every CHECKPOINT_EVERY entries: the log up to <seq> in one file
    _log/_last_checkpoint.json        which checkpoint is the latest
    _runs/<run>.json                  one record per run: configs, model, versions, state, counts, heartbeat
    _staging/<run>/                   a run's Parquet parts before they are committed

Commits move no row data. Writer tasks write their parts under the run's staging folder; a commit
gathers the increment's parts into one folder per table (renames inside staging), creates the
next log entry listing them (an exclusive create: `os.link` on local disk, a conditional PUT
`If-None-Match: *` on S3; a run that loses the race reads the new entries and tries the next
number), then moves each folder into place: on local disk one rename per table, so a glob of
`<table>/**/*.parquet` sees whole commits only; on S3 a server-side copy per file. The driver
never opens a data file on this path. Readers list the log.

Conflicts: if another run committed some of the same inputs meanwhile (its new entries' ids are
read, only those), the parts holding them are rewritten without those rows by `filter_files`
(Ray tasks in the pipeline; in-process by default), and only those parts.

A run's record carries a heartbeat. Recovery (at the start of every run) rolls forward the commits
of dead runs whose moves were cut short and deletes their staging; a run is dead when its driver
ran on this host and is gone, when its heartbeat is older than its lease, or when it ended. The
staging of a live run is never touched.

`--retry-errors` and `raydist compact` commit entries that list under "removed" the files they
replace (their rewrites are among the entry's files), so each input keeps one row.

Outputs of earlier raydist still read and resume: one file per table per commit (`<table>/<name>`)
and, before the log, manifests in `_runs/<run>.json` holding "files" (commits numbered before
the log's).
"""

from __future__ import annotations

import json
import os
import posixpath
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from raydist.io.fs import StoreError, check_writable, create_exclusive, full_uri, put_whole, url_to_fs
from raydist.io.runs import is_alive, now_iso
from raydist.io.schema import TABLES, schema_for

LOG, RUNS, STAGING = "_log", "_runs", "_staging"
LAST_CHECKPOINT = "_last_checkpoint.json"
CHECKPOINT_EVERY = 100  # entries between log checkpoints
# fault injection for the tests that kill a driver during a commit's moves: seconds after each move
MOVE_DELAY_S = float(os.environ.get("RAYDIST_FAULT_MOVE_DELAY_S", "0"))

# (source path, destination path, ids whose rows go) -> rows kept, or None if no row of the ids was
# there (nothing written). A FilterFiles runs a list of them: in Ray tasks, or in-process.
FilterJob = tuple[str, str, list[str]]
FilterFiles = Callable[[list[FilterJob], dict[str, Any]], list[int | None]]


def filter_file(job: FilterJob, storage_options: dict[str, Any] | None = None) -> int | None:
    """Write `src` minus the rows of `drop` to `dst` (only if some row goes, and only if any is
    left). Returns the rows kept, or None when `src` holds none of `drop`."""
    src, dst, drop = job
    fs, path = url_to_fs(src, storage_options)
    t = _read_moving(fs, path)
    keep = pc.invert(pc.is_in(t.column("id"), pa.array(drop, pa.string())))
    if pc.all(keep).as_py() in (True, None):
        return None
    rest = t.filter(keep)
    if rest.num_rows:
        dfs, dpath = url_to_fs(dst, storage_options)
        dfs.makedirs(posixpath.dirname(dpath), exist_ok=True)
        with dfs.open(dpath, "wb") as f:
            pq.write_table(rest, f, compression="zstd")
    return rest.num_rows


def filter_in_process(jobs: list[FilterJob], storage_options: dict[str, Any]) -> list[int | None]:
    return [filter_file(j, storage_options) for j in jobs]


@dataclass
class Taken:
    """What other runs committed while one run works: ids in their log entries up to `upto`."""

    upto: int  # log entries up to this number are in `ids` (or were committed before the run)
    ids: set[str] = field(default_factory=set)


class RunStore:
    def __init__(
        self, out: str, storage_options: dict[str, Any] | None = None, filter_files: FilterFiles | None = None
    ):
        self.out = out.rstrip("/")
        so = dict(storage_options or {})
        self.storage_options = dict(so)  # as given: for tasks that open files by URI
        if "://" in self.out and not self.out.startswith("file://"):
            so["use_listings_cache"] = False  # other runs write here: a cached listing would be stale
        self.fs, self.root = url_to_fs(self.out, so)
        self.root = self.root.rstrip("/")
        self.filter_files = filter_files or filter_in_process
        self._entries: list[dict[str, Any]] = []  # the log as read so far (legacy manifests first)
        self._head = -1  # highest log number read; -1: nothing read yet
        self._checkpoint = 0  # entries up to this number were all in place when it was written

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def uri(self, *parts: str) -> str:
        """Full URI (with scheme) for writers on other nodes."""
        return full_uri(self.fs, self.path(*parts))

    @property
    def local(self) -> bool:
        return not self.uri().count("://")

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
        """Every commit, in order. Reads only the entries not read before: the first call reads
        the latest checkpoint (if any) and the entries after it, later calls the new entries."""
        if self._head < 0:
            self._head = self._read_checkpoint()
            if self._head < 0:
                self._head = self._read_unchecked()
        while True:  # entries are numbered without gaps: read on until the next is missing
            try:
                entry = self._read_json(self.path(LOG, f"{self._head + 1:08d}.json"))
            except FileNotFoundError:
                return self._entries
            self._entries.append(entry)
            self._head += 1

    def _read_checkpoint(self) -> int:
        """Load the latest checkpoint; its number, or -1 if there is none."""
        try:
            seq = int(self._read_json(self.path(LOG, LAST_CHECKPOINT))["seq"])
            with self.fs.open(self.path(LOG, f"{seq:08d}.checkpoint.parquet"), "rb") as f:
                t = pq.read_table(f, columns=["entry"])
        except FileNotFoundError:
            return -1
        self._entries = [json.loads(e) for e in t.column("entry").to_pylist()]
        self._checkpoint = seq
        return seq

    def _read_unchecked(self) -> int:
        """An output with no checkpoint: legacy manifests, then every entry (listed)."""
        for p in self._ls(self.path(RUNS), "*.json"):
            m = self._read_json(p)
            if "files" in m:  # a manifest of raydist before the log: one commit
                self._entries.append({**m, "seq": 0, "legacy": True})
        head = 0
        for p in self._ls(self.path(LOG), "*.json"):
            name = posixpath.basename(p)
            if name[:-5].isdigit() and int(name[:-5]) > head:
                self._entries.append(self._read_json(p))
                head = int(name[:-5])
        return head

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
            flat = any("/" not in n for _, n in names)  # files of earlier raydist: <table>/<name>
            placed = {posixpath.basename(p) for p in self._ls(self.path(table), "*.parquet")} if flat else set()
            folders: dict[str, set[str] | bool] = {}
            for e, n in names:
                if n in gone or (skip_rewrites and n in e.get("rewrites", {}).get(table, ())):
                    continue
                if "/" in n:  # <commit folder>/<part>
                    folder = n.split("/")[0]
                    if folder not in folders:
                        folders[folder] = e.get("seq", 0) <= self._checkpoint or self._placed(table, folder)
                    f = folders[folder]
                    here = f if isinstance(f, bool) else n in f
                else:
                    here = n in placed
                out.append(self.path(table, n) if here else self.path(STAGING, e["run_id"], table, n))
        return out

    def _placed(self, table: str, folder: str) -> set[str] | bool:
        """Whether a commit folder is in place: on local disk it moves whole (one rename); on S3
        file by file, so the names of those in place."""
        if self.local:
            return os.path.exists(self.path(table, folder))
        return {f"{folder}/{posixpath.basename(p)}" for p in self._ls(self.path(table, folder), "*.parquet")}

    def ids_in(self, files: list[str]) -> list[str]:
        ids: list[str] = []
        for p in files:
            ids += _read_moving(self.fs, p, ["id"]).column("id").to_pylist()
        return ids

    def done_ids(self, tables: tuple[str, ...] = ("clips", "errors")) -> set[str]:
        """Ids already committed in any of `tables` (a result or an error), read in this process.
        Runs do not call this (it grows with the output); they anti-join in Ray Data."""
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
        for e in entries:  # deletions cut short (those before the checkpoint were done)
            if e.get("seq", 0) > self._checkpoint:
                for table, names in e.get("removed", {}).items():
                    for name in names:
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
        ids: dict[str, list[str]] | list[str],
        taken: Taken,
        done_tables: tuple[str, ...],
        info: dict[str, Any],
        replace_errors_of: set[str] | None = None,
        error_ids: set[str] = frozenset(),  # type: ignore[assignment]
    ) -> tuple[dict[str, Any], set[str]]:
        """Commit staged `parts` (per table, names under _staging/<run>/<table>/) as commit
        `number` of run `run_id`. `ids`: the ids each part holds (part name -> ids; a plain list
        when there is one part). Rows of ids that other runs committed since this run started
        (`taken`, kept up to date here) are left out: only the parts holding them are rewritten.
        `replace_errors_of`: retried ids whose older error rows go; `error_ids`: which ids are
        error rows (for the counts). Returns (the log entry, the ids left out)."""
        if isinstance(ids, list):
            ((name,),) = {tuple(set(n)) for n in parts.values()}
            ids = {name: ids}
        folder = f"{run_id}-c{number:05d}"
        parts = {t: [self._gather(run_id, t, folder, n) for n in names] for t, names in parts.items()}
        ids = {f"{folder}/{n}": v for n, v in ids.items()}
        all_ids = {i for v in ids.values() for i in v}
        dropped: set[str] = set()
        rewritten: list[str] = []
        while True:
            entries = list(self.log())
            head = self._head  # this attempt claims head + 1; reads below may see later entries
            new = [e for e in entries if taken.upto < e.get("seq", 0) and e["run_id"] != run_id]
            if new:
                taken.ids.update(self.ids_in(self._located(new, done_tables, skip_rewrites=True)))
            taken.upto = head
            fresh = (all_ids & taken.ids) - dropped
            if fresh:
                dropped |= fresh
                parts = self._drop_rows(run_id, parts, ids, dropped)
            entry: dict[str, Any] = {
                "seq": head + 1,
                "run_id": run_id,
                "commit": number,
                "files": {t: names for t, names in parts.items() if names},
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
                for n in rewritten:  # an earlier attempt's rewrites: staged again below
                    self._rm(self.path(STAGING, run_id, "errors", n))
                staged, entry["removed"]["errors"] = self.stage_without("errors", retried, run_id, folder)
                rewritten = staged
                entry["files"].setdefault("errors", []).extend(staged)
                entry["rewrites"]["errors"] = staged
            if self._create(self.path(LOG, f"{entry['seq']:08d}.json"), json.dumps(entry, indent=2).encode()):
                break  # else another run took this number: read what it committed and try the next
        self.log()  # (reads our own entry too)
        self._apply(entry)
        self._maybe_checkpoint(entry["seq"])
        return entry, dropped

    def replace(
        self, run_id: str, number: int, swaps: list[tuple[str, str, list[str]]], info: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Commit rewrites that hold the same rows as the files they replace (compaction): each
        swap is (table, staged name, committed names it replaces). A swap whose files another
        run replaced meanwhile is left out (its staged file deleted). Returns the log entry, or
        None when no swap is left."""
        while True:
            self.log()
            head = self._head
            live = {t: {self._relative(t, p) for p in self.committed_files(t)} for t in {s[0] for s in swaps}}
            ok = [s for s in swaps if set(s[2]) <= live[s[0]]]
            for t, name, _ in (s for s in swaps if s not in ok):
                self._rm(self.path(STAGING, run_id, t, name))
            swaps = ok
            if not swaps:
                return None
            entry: dict[str, Any] = {
                "seq": head + 1,
                "run_id": run_id,
                "commit": number,
                "files": {},
                "removed": {},
                "rewrites": {},
                "created": now_iso(),
                **info,
            }
            for t, name, old in swaps:
                entry["files"].setdefault(t, []).append(name)
                entry["rewrites"].setdefault(t, []).append(name)  # no new ids: concurrent runs skip them
                entry["removed"].setdefault(t, []).extend(old)
            if self._create(self.path(LOG, f"{entry['seq']:08d}.json"), json.dumps(entry, indent=2).encode()):
                break
        self.log()
        self._apply(entry)
        self._maybe_checkpoint(entry["seq"])
        return entry

    def _gather(self, run_id: str, table: str, folder: str, name: str) -> str:
        """Move a staged part into the commit's folder (inside the run's staging)."""
        src, rel = self.path(STAGING, run_id, table, name), f"{folder}/{name}"
        if self.local:
            os.makedirs(self.path(STAGING, run_id, table, folder), exist_ok=True)
            os.rename(src, self.path(STAGING, run_id, table, rel))
        else:
            self.fs.mv(src, self.path(STAGING, run_id, table, rel))
        return rel

    def _drop_rows(
        self, run_id: str, parts: dict[str, list[str]], ids: dict[str, list[str]], drop: set[str]
    ) -> dict[str, list[str]]:
        """Rewrite the staged parts that hold any id of `drop` without those rows (the others are
        not opened). Returns the parts as they are now."""
        jobs, where = [], []
        for t, names in parts.items():
            for n in names:
                hit = sorted(drop.intersection(ids.get(n, ())))
                if hit:
                    stem, k = n[: -len(".parquet")], 1
                    while f"{stem}-d{k}.parquet" in names:
                        k += 1
                    jobs.append(
                        (self.uri(STAGING, run_id, t, n), self.uri(STAGING, run_id, t, f"{stem}-d{k}.parquet"), hit)
                    )
                    where.append((t, n, f"{stem}-d{k}.parquet"))
        kept = self.filter_files(jobs, self.storage_options) if jobs else []
        out = {t: list(names) for t, names in parts.items()}
        for (t, old, new), rows in zip(where, kept):
            if rows is None:  # (a table with no row for those ids)
                continue
            i = out[t].index(old)
            out[t][i : i + 1] = [new] if rows else []
            ids[new] = [i for i in ids[old] if i not in drop]
            self._rm(self.path(STAGING, run_id, t, old))
        return out

    def stage_without(
        self, table: str, ids: set[str], run_id: str, folder: str = "rewrite", files: list[str] | None = None
    ) -> tuple[list[str], list[str]]:
        """Stage rewrites of the committed files of `table` (or `files`, relative names) that hold
        any of `ids`, minus those rows, in `folder` of run `run_id`'s staging (by `filter_files`).
        Returns (staged names, replaced names) for its log entry."""
        located = self.committed_files(table)
        names = [self._relative(table, p) for p in located]
        if files is not None:
            located, names = zip(*[(p, n) for p, n in zip(located, names) if n in files]) or ((), ())
        drop, dsts = sorted(ids), [f"{folder}/rewrite-{n.replace('/', '-')}" for n in names]
        jobs = [(full_uri(self.fs, p), self.uri(STAGING, run_id, table, d), drop) for p, d in zip(located, dsts)]
        staged, replaced = [], []
        for d, n, rows in zip(dsts, names, self.filter_files(jobs, self.storage_options) if jobs else []):
            if rows is not None:
                replaced.append(n)
                staged += [d] if rows else []
        return staged, replaced

    def _relative(self, table: str, path: str) -> str:
        """A located file's name in the log: <folder>/<part> or <part>."""
        base = self.path(table) + "/"
        if path.startswith(base):
            return path[len(base) :]
        rest = path[len(self.path(STAGING)) + 1 :]  # <run>/<table>/<name>
        return rest.split("/", 2)[2]

    def _create(self, path: str, data: bytes) -> bool:
        return create_exclusive(self.fs, path, data)

    def _apply(self, entry: dict[str, Any]) -> None:
        """Move a committed entry's files into place and delete the files it replaced (both
        idempotent: any run may finish a commit whose moves were cut short)."""
        for table, names in entry["files"].items():
            for folder in dict.fromkeys(n.split("/")[0] for n in names if "/" in n):
                self._publish(entry["run_id"], table, folder, [n for n in names if n.startswith(folder + "/")])
                time.sleep(MOVE_DELAY_S)
            for name in (n for n in names if "/" not in n):  # earlier raydist: one file per commit
                self._move(entry["run_id"], table, name)
                time.sleep(MOVE_DELAY_S)
        for table, names in entry.get("removed", {}).items():
            for name in names:
                self._rm(self.path(table, name))
                if "/" in name and self.local:
                    try:
                        os.rmdir(self.path(table, name.split("/")[0]))  # the last file of its folder
                    except OSError:
                        pass

    def _publish(self, run_id: str, table: str, folder: str, names: list[str]) -> None:
        """A commit folder into place: one rename on local disk; file by file on S3."""
        final, staged = self.path(table, folder), self.path(STAGING, run_id, table, folder)
        if not self.local:
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda n: self._move(run_id, table, n), names))
            return
        if os.path.exists(final):
            return
        try:
            os.makedirs(self.path(table), exist_ok=True)
            os.rename(staged, final)
        except FileNotFoundError:
            if not os.path.exists(final):  # not moved by another run meanwhile: lost
                raise StoreError(
                    f"committed folder {table}/{folder} of run {run_id} is missing from {self.out}"
                ) from None

    def _move(self, run_id: str, table: str, name: str) -> None:
        final, staged = self.path(table, name), self.path(STAGING, run_id, table, name)
        if self.fs.exists(final):
            return
        try:
            self.fs.makedirs(posixpath.dirname(final), exist_ok=True)
            self.fs.mv(staged, final)
        except FileNotFoundError:
            if not self.fs.exists(final):  # not moved by another run meanwhile: lost
                raise StoreError(f"committed file {table}/{name} of run {run_id} is missing from {self.out}") from None

    def _maybe_checkpoint(self, seq: int, every: int | None = None) -> None:
        """Every CHECKPOINT_EVERY entries: make sure every entry up to `seq` is in place, then
        write the log up to `seq` as one Parquet file and point _last_checkpoint at it."""
        every = every or CHECKPOINT_EVERY
        if seq % every:
            return
        entries = [e for e in self.log() if e.get("seq", 0) <= seq]
        for e in entries:
            if e.get("seq", 0) > self._checkpoint:
                self._apply(e)
        table = pa.table({"seq": [e.get("seq", 0) for e in entries], "entry": [json.dumps(e) for e in entries]})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        put_whole(self.fs, self.path(LOG, f"{seq:08d}.checkpoint.parquet"), sink.getvalue().to_pybytes())
        put_whole(self.fs, self.path(LOG, LAST_CHECKPOINT), json.dumps({"seq": seq}).encode())

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

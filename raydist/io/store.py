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
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from raydist.io.fs import StoreError, check_writable, create_exclusive, full_uri, put_whole, url_to_fs
from raydist.io.runs import is_alive
from raydist.io.schema import TABLES, schema_for

LOG, RUNS, STAGING = "_log", "_runs", "_staging"
LAST_CHECKPOINT = "_last_checkpoint.json"
CHECKPOINT_EVERY = 100  # entries between log checkpoints
# fault injection for the tests that kill a driver during a commit's moves: seconds after each move
MOVE_DELAY_S = float(os.environ.get("RAYDIST_FAULT_MOVE_DELAY_S", "0"))


@dataclass
class Taken:
    """What other runs committed while one run works: ids in their log entries up to `upto`."""

    upto: int  # log entries up to this number are in `ids` (or were committed before the run)
    ids: set[str] = field(default_factory=set)


class RunStore:
    def __init__(self, out: str, storage_options: dict[str, Any] | None = None, filter_files: Any = None):
        """`filter_files`: how rewrites of files without some ids run (`raydist.io.commit.FilterFiles`)."""
        self.out = out.rstrip("/")
        so = dict(storage_options or {})
        self.storage_options = dict(so)  # as given: for tasks that open files by URI
        if "://" in self.out and not self.out.startswith("file://"):
            so["use_listings_cache"] = False  # other runs write here: a cached listing would be stale
        self.fs, self.root = url_to_fs(self.out, so)
        self.root = self.root.rstrip("/")
        self.filter_files = filter_files or _filter_in_process
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

    def commit(self, *args: Any, **kwargs: Any) -> tuple[dict[str, Any], set[str]]:
        """Commit a run's staged parts: `raydist.io.commit.commit`."""
        from raydist.io.commit import commit

        return commit(self, *args, **kwargs)

    def replace(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        """Commit rewrites holding the same rows as the files they replace: `raydist.io.commit.replace`."""
        from raydist.io.commit import replace

        return replace(self, *args, **kwargs)

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


def _filter_in_process(jobs: list, storage_options: dict[str, Any]) -> list:
    from raydist.io.commit import filter_in_process

    return filter_in_process(jobs, storage_options)


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

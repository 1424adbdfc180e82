"""Exactly-once, resumable output directories (local or s3://).

A run writes its Parquet parts under `_staging/<run>/`; committing writes `_runs/<run>.json`
(the commit point: the list of the run's files) and then moves the parts into `frames/`,
`clips/`, `segments/`, `errors/`. On the next run, `recover()` rolls forward any commit that was
interrupted during the moves and deletes staging left by runs that never committed, so a crashed
run leaves no rows behind and a rerun processes exactly the inputs not yet committed.

A run that retries failed inputs also lists, under "removed", the earlier error parts it
replaces: its staged rewrites of them (minus the retried ids) are among its files, and the old
parts are deleted after the commit point, so each input keeps at most its latest error row.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from raydist.io.fs import full_uri, is_object_store, url_to_fs
from raydist.io.schema import TABLES, schema_for

RUNS, STAGING = "_runs", "_staging"


class StoreError(RuntimeError):
    pass


class RunStore:
    def __init__(self, out: str, storage_options: dict[str, Any] | None = None):
        self.out = out.rstrip("/")
        self.fs, self.root = url_to_fs(self.out, storage_options)
        self.root = self.root.rstrip("/")

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def uri(self, *parts: str) -> str:
        """Full URI (with scheme) for writers on other nodes."""
        return full_uri(self.fs, self.path(*parts))

    def check_writable(self) -> None:
        """Fail fast, before any work, if the output cannot be written."""
        check_writable(self.out, self.fs, self.path(RUNS))

    def manifests(self) -> list[dict[str, Any]]:
        pattern = self.path(RUNS, "*.json")
        out = []
        for p in sorted(self.fs.glob(pattern)):
            try:
                with self.fs.open(p, "r") as f:
                    out.append(json.load(f))
            except ValueError as e:
                raise StoreError(f"run manifest {p} is not valid JSON ({e}); move it aside to continue") from e
        return out

    def recover(self) -> None:
        """Finish interrupted commits; drop staging of runs that never committed."""
        committed = set()
        manifests = self.manifests()
        removed = _removed(manifests)
        for m in manifests:
            committed.add(m["run_id"])
            for table, files in m["files"].items():
                for name in files:
                    if name not in removed.get(table, ()):
                        self._move(m["run_id"], table, name)
            self._remove(m)
        if self.fs.exists(self.path(STAGING)):
            for d in self.fs.ls(self.path(STAGING), detail=False):
                run_id = posixpath.basename(d.rstrip("/"))
                print(
                    f"raydist: removing staging of {'committed' if run_id in committed else 'uncommitted'} run {run_id}"
                )
                self.fs.rm(d, recursive=True)
            self._drop_empty_staging()

    def _move(self, run_id: str, table: str, name: str) -> None:
        final, staged = self.path(table, name), self.path(STAGING, run_id, table, name)
        if self.fs.exists(final):
            return
        if not self.fs.exists(staged):
            raise StoreError(f"committed file {table}/{name} of run {run_id} is missing from {self.out}")
        self.fs.makedirs(self.path(table), exist_ok=True)
        self.fs.mv(staged, final)

    def _remove(self, manifest: dict[str, Any]) -> None:
        for table, names in manifest.get("removed", {}).items():
            for name in names:
                if self.fs.exists(self.path(table, name)):
                    self.fs.rm(self.path(table, name))

    def committed_files(self, table: str) -> list[str]:
        manifests = self.manifests()
        gone = _removed(manifests).get(table, set())
        return [self.path(table, name) for m in manifests for name in m["files"].get(table, []) if name not in gone]

    def stage_without(self, table: str, ids: set[str], run_id: str) -> tuple[list[str], list[str]]:
        """Stage rewrites of the committed parts of `table` that hold any of `ids`, minus those
        rows, for run `run_id`. Returns (staged names, replaced names) for its manifest."""
        staged, replaced = [], []
        for p in self.committed_files(table):
            with self.fs.open(p, "rb") as f:
                t = pq.read_table(f)
            keep = pc.invert(pc.is_in(t.column("id"), pa.array(sorted(ids), pa.string())))
            if pc.all(keep).as_py():
                continue
            replaced.append(posixpath.basename(p))
            rest = t.filter(keep)
            if rest.num_rows:
                name = f"{run_id}-rewrite-{posixpath.basename(p)}"
                with self.fs.open(self.path(STAGING, run_id, table, name), "wb") as f:
                    pq.write_table(rest, f, compression="zstd")
                staged.append(name)
        return staged, replaced

    def done_ids(self, tables: tuple[str, ...] = ("clips", "errors")) -> set[str]:
        """Ids already committed in any of `tables` (a result or an error)."""
        ids: set[str] = set()
        for table in tables:
            for p in self.committed_files(table):
                with self.fs.open(p, "rb") as f:
                    ids.update(pq.read_table(f, columns=["id"]).column("id").to_pylist())
        return ids

    def commit(self, manifest: dict[str, Any]) -> str:
        """Write the run manifest (the commit point), then move its parts into place."""
        run_id = manifest["run_id"]
        path, tmp = self.path(RUNS, f"{run_id}.json"), self.path(STAGING, run_id, "manifest.json")
        with self.fs.open(tmp, "w") as f:  # written in full first: a torn manifest is never committed
            json.dump(manifest, f, indent=2)
        self.fs.mv(tmp, path)
        for table, files in manifest["files"].items():
            for name in files:
                self._move(run_id, table, name)
        self._remove(manifest)
        if self.fs.exists(self.path(STAGING, run_id)):
            self.fs.rm(self.path(STAGING, run_id), recursive=True)
        self._drop_empty_staging()
        return path

    def _drop_empty_staging(self) -> None:
        staging = self.path(STAGING)
        if self.fs.exists(staging) and not self.fs.ls(staging, detail=False):
            self.fs.rm(staging, recursive=True)


def _removed(manifests: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Per table, the part names that later runs replaced."""
    out: dict[str, set[str]] = {}
    for m in manifests:
        for table, names in m.get("removed", {}).items():
            out.setdefault(table, set()).update(names)
    return out


def check_writable(out: str, fs: fsspec.AbstractFileSystem, folder: str) -> None:
    """Write and delete a small probe file in `folder` of `out`; raise StoreError naming the cause
    (a missing bucket, no permission, a full disk, a path under a file) before any work is spent.
    A missing bucket is never created: object stores are provisioned on purpose."""
    if is_object_store(fs):
        bucket = folder.split("/", 1)[0]
        try:
            exists = fs.exists(bucket)
        except Exception as e:
            raise StoreError(f"cannot reach bucket {bucket!r} of {out}: {type(e).__name__}: {e}") from e
        if not exists:
            raise StoreError(f"bucket {bucket!r} of {out} does not exist (or these credentials cannot see it)")
    probe = posixpath.join(folder, ".write-probe")
    try:
        fs.makedirs(folder, exist_ok=True)
        with fs.open(probe, "wb") as f:
            f.write(b"ok")
        fs.rm(probe)
    except Exception as e:  # permissions, full disk, a file in the way: all end the same way
        raise StoreError(f"cannot write to {out}: {type(e).__name__}: {e}") from e


def read_table(
    out: str, table: str, storage_options: dict[str, Any] | None = None, columns: list[str] | None = None
) -> pa.Table:
    """Read one output table (or some of its columns), committed runs only: a run being written
    is never seen."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; choose from {TABLES}")
    store = RunStore(out, storage_options)
    parts = []
    for p in store.committed_files(table):
        with store.fs.open(p, "rb") as f:
            parts.append(pq.read_table(f, columns=columns))
    if not parts:
        empty = schema_for(table).empty_table()
        return empty.select(columns) if columns else empty
    return pa.concat_tables(parts, promote_options="permissive")

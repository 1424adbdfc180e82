"""`raydist compact OUT`: rewrite an output's small files into big ones, as a commit like any
other. Each commit of a run adds one folder of parts per table (a part holds `rows_per_file`
clips), so a long run, or many short ones, leaves many small files; readers that open every file
(duckdb, Spark, a run's skip-what-is-done step) slow down with their number.

Small files of a table are packed, in log order, into bins of about `target_mb`; Ray Data tasks
read each bin and write it as one file into this run's staging; one log entry then lists the new
files and the ones they replace. Readers see the same rows before and after (through the log; a
plain glob may count a bin's rows twice while its old files are deleted, a few milliseconds on
local disk); a run committing meanwhile is unaffected, and a bin whose files another run
replaced meanwhile (`--retry-errors`) is left out. Killed midway, nothing is committed; the next
run of any kind removes the staging.

    raydist compact emb/ --target-mb 256
"""

from __future__ import annotations

import os
import posixpath
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import ray

from raydist.io.fs import url_to_fs
from raydist.io.runs import Heartbeat, driver_info, new_run_id, now_iso
from raydist.io.schema import TABLES
from raydist.io.store import STAGING, RunStore, _read_moving
from raydist.pipeline.todo import filter_files_in_tasks

# fault injection for the test that kills a compaction before its commit: seconds to wait there
DELAY_S = float(os.environ.get("RAYDIST_FAULT_COMPACT_DELAY_S", "0"))


@dataclass
class Compacted:
    files_before: int = 0
    files_after: int = 0
    rows: int = 0
    bytes: int = 0
    wall_s: float = 0.0
    run_id: str = ""

    def line(self) -> str:
        return (
            f"compacted {self.files_before} files into {self.files_after} ({self.rows} rows, "
            f"{self.bytes / 1e6:.1f} MB) in {self.wall_s:.1f} s"
        )


def bins(sizes: list[tuple[str, int]], target: int) -> list[list[str]]:
    """Consecutive files smaller than half of `target`, packed into groups of about `target`
    bytes; a group of one file is left alone."""
    out, cur, total = [], [], 0
    for name, size in sizes:
        if size >= target // 2:
            continue
        if cur and total + size > target:
            out.append(cur)
            cur, total = [], 0
        cur.append(name)
        total += size
    out.append(cur)
    return [b for b in out if len(b) > 1]


def merge_files(row: dict[str, Any], storage_options: dict[str, Any]) -> dict[str, Any]:
    """One bin: read its files, write them as one file (row groups as the writers make them)."""
    fs, _ = url_to_fs(row["dst"], storage_options)
    tables = [_read_moving(fs, fs._strip_protocol(p)) for p in row["sources"]]
    table = pa.concat_tables(tables, promote_options="permissive")
    dst = fs._strip_protocol(row["dst"])
    fs.makedirs(posixpath.dirname(dst), exist_ok=True)
    with fs.open(dst, "wb") as f:
        pq.write_table(table, f, row_group_size=1000 if row["table"] == "frames" else 100_000, compression="zstd")
    return {**row, "rows": table.num_rows}


def compact(
    out: str, target_mb: float = 256.0, tables: tuple[str, ...] = TABLES, storage_options: dict[str, Any] | None = None
) -> Compacted:
    """Compact `tables` of output `out` (Ray must be initialised)."""
    start, so = time.time(), storage_options or {}
    store = RunStore(out, so, filter_files=filter_files_in_tasks)
    store.check_writable()
    run_id = new_run_id()
    record = {"run_id": run_id, "kind": "compact", "state": "running", "driver": driver_info(), "created": now_iso()}
    record |= {"lease_s": 60.0, "target_mb": target_mb, "commits": []}
    heartbeat = Heartbeat(store, record, every_s=15.0)
    result = Compacted(run_id=run_id)
    try:
        store.recover(me=run_id)
        folder = f"{run_id}-c00000"
        jobs = []
        for table in tables:
            files = store.committed_files(table)
            sizes = [(p, store.fs.size(p)) for p in files]
            size = dict(sizes)
            for k, group in enumerate(bins(sizes, int(target_mb * 1e6))):
                name = f"{folder}/compact-{k:05d}.parquet"
                jobs.append(
                    {
                        "table": table,
                        "name": name,
                        "sources": [store.uri(p[len(store.root) + 1 :]) for p in group],
                        "old": [store._relative(table, p) for p in group],
                        "dst": store.uri(STAGING, run_id, table, name),
                        "bytes": sum(size[p] for p in group),
                    }
                )
        if jobs:
            ds = ray.data.from_items(jobs).map(merge_files, fn_args=(so,), num_cpus=0.5)
            done = ds.take_all()
            time.sleep(DELAY_S)
            swaps = [(r["table"], r["name"], list(r["old"])) for r in done]
            entry = store.replace(run_id, 0, swaps, {"kind": "compact"})
            if entry:
                kept = {(t, n) for t, names in entry["files"].items() for n in names}
                done = [r for r in done if (r["table"], r["name"]) in kept]
                heartbeat.update(commits=[entry["seq"]])
            result.files_before = sum(len(r["old"]) for r in done)
            result.files_after = len(done)
            result.rows = sum(r["rows"] for r in done)
            result.bytes = sum(r["bytes"] for r in done)
    except BaseException as e:
        heartbeat.stop(state="failed", ended=now_iso(), error=f"{type(e).__name__}: {e}"[:500])
        raise
    store.drop_staging(run_id)
    result.wall_s = time.time() - start
    heartbeat.stop(state="complete", ended=now_iso(), wall_s=result.wall_s)
    return result

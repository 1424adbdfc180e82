"""The output store without Ray: commit log races, leases, recovery. Local disk and moto's S3."""

from __future__ import annotations

import json
import os
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raydist.io.store import RunStore, Taken, read_table


@pytest.fixture(params=["local", "s3"])
def store_out(request, tmp_path, s3):
    """(output URI, storage options, fsspec filesystem) on local disk or on moto's S3."""
    if request.param == "local":
        import fsspec

        return str(tmp_path / "out"), {}, fsspec.filesystem("file")
    import s3fs

    prefix = f"raydist-test/store-{os.path.basename(tmp_path)}"
    fs = s3fs.S3FileSystem(key=s3["key"], secret=s3["secret"], endpoint_url=s3["endpoint_url"])
    return f"s3://{prefix}", s3, fs


def _stage(store: RunStore, run_id: str, name: str, ids: list[str], table: str = "clips") -> None:
    store.fs.makedirs(store.path("_staging", run_id, table), exist_ok=True)
    with store.fs.open(store.path("_staging", run_id, table, name), "wb") as f:
        pq.write_table(pa.table({"id": pa.array(ids, pa.string())}), f)


def _record(store: RunStore, run_id: str, host: str, pid: int, heartbeat: float, lease_s: float = 60) -> None:
    store.write_record(
        {
            "run_id": run_id,
            "state": "running",
            "driver": {"host": host, "pid": pid},
            "heartbeat": heartbeat,
            "lease_s": lease_s,
            "created": "x",
        }
    )


def _commit_together(out: str, so: dict, ids: dict[str, list[str]], tag: str) -> dict:
    """Runs `ids` keys each stage one part with their ids, then commit at the same moment."""
    barrier, entries, threads = threading.Barrier(len(ids)), {}, []
    for run, run_ids in ids.items():
        store = RunStore(out, so)
        since = store.log()[-1]["seq"] if store.log() else 0
        part = f"part-{run}{tag}.parquet"
        _stage(store, f"{run}{tag}", part, run_ids)
        info = {"counts": {"inputs": len(run_ids), "ok": len(run_ids), "failed": 0}}
        args = (f"{run}{tag}", 0, {"clips": [part]}, run_ids, Taken(since), ("clips",), info)

        def go(run=run, store=store, args=args):
            barrier.wait()
            entries[run] = store.commit(*args)

        threads.append(threading.Thread(target=go))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return entries


def test_two_runs_racing_to_commit_never_duplicate_an_input(store_out):
    """20 rounds: two runs commit overlapping inputs at the same moment; every input ends in
    exactly one committed row, and each run's log entry counts what it kept."""
    out, so, _ = store_out
    for r in range(20):
        ids = {"a": [f"r{r}-{i}" for i in range(0, 6)], "b": [f"r{r}-{i}" for i in range(3, 9)]}
        entries = _commit_together(out, so, ids, str(r))
        got = [i for i in read_table(out, "clips", so).column("id").to_pylist() if i.startswith(f"r{r}-")]
        assert sorted(got) == sorted({*ids["a"], *ids["b"]}), r
        assert sorted(len(entries[run][1]) for run in ids) == [0, 3]  # the later commit drops the overlap
        assert sorted(entries[run][0]["counts"]["inputs"] for run in ids) == [3, 6]
    seqs = [e["seq"] for e in RunStore(out, so).log()]
    assert seqs == list(range(1, 41))  # one log entry per commit, numbered without gaps


def test_recovery_leaves_a_live_runs_staging_and_cleans_a_dead_one(store_out):
    out, so, fs = store_out
    store = RunStore(out, so)
    root = out.split("://", 1)[-1]
    _stage(store, "live", "p.parquet", ["x"])
    _record(store, "live", "another-host", 1, time.time(), lease_s=60.0)
    _stage(store, "gone", "p.parquet", ["y"])
    _record(store, "gone", os.uname().nodename, 2**22 + 12345, time.time())  # this host, no such pid
    _stage(store, "ended", "p.parquet", ["z"])
    store.write_record({"run_id": "ended", "state": "complete", "created": "x"})
    _stage(store, "unknown", "p.parquet", ["w"])  # no record at all: from an older raydist
    store.recover()
    fs.invalidate_cache()
    assert [os.path.basename(p) for p in fs.ls(f"{root}/_staging")] == ["live"]
    # its heartbeat stopped a lease ago (written as such, not waited for: a wait on a loaded machine
    # could outlast a short lease before the first check)
    _record(store, "live", "another-host", 1, time.time() - 61, lease_s=60.0)
    store.recover()
    fs.invalidate_cache()
    assert not fs.exists(f"{root}/_staging")


def test_a_dead_runs_commit_cut_short_is_rolled_forward(store_out):
    out, so, fs = store_out
    store = RunStore(out, so)
    _record(store, "dead", "another-host", 1, time.time() - 120)  # heartbeat two minutes old
    for name, ids in (("p0.parquet", ["a", "b"]), ("p1.parquet", ["c"])):
        _stage(store, "dead", name, ids)
    entry = {"seq": 1, "run_id": "dead", "commit": 0, "files": {"clips": ["p0.parquet"]}, "removed": {}}
    fs.makedirs(store.path("_log"), exist_ok=True)
    with fs.open(store.path("_log", "00000001.json"), "w") as f:  # the commit point, then a crash
        json.dump(entry, f)
    assert read_table(out, "clips", so).column("id").to_pylist() == ["a", "b"]  # read from staging
    RunStore(out, so).recover()
    assert sorted(os.path.basename(p) for p in fs.ls(store.path("clips"))) == ["p0.parquet"]
    assert read_table(out, "clips", so).column("id").to_pylist() == ["a", "b"]  # p1: never committed
    assert not fs.exists(store.path("_staging"))

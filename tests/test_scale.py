"""Cluster scale (issue 38): commits move no row data, the conflict path rewrites only what it
must, log checkpoints read like the log, the anti-join skips exactly what is committed, manifests
stream through Ray Data, and compaction keeps every row, even when killed."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import raydist.io.store as store_module
from raydist.io.commit import filter_in_process
from raydist.io.inputs import InputError
from raydist.io.store import RunStore, Taken, read_table


def _stage(store: RunStore, run: str, part: str, ids: list[str], tables=("clips", "frames")) -> None:
    rng = np.random.default_rng(abs(hash(part)) % 2**32)
    for t in tables:
        store.fs.makedirs(store.path("_staging", run, t), exist_ok=True)
        values = pa.array(rng.standard_normal(len(ids)))
        with store.fs.open(store.path("_staging", run, t, part), "wb") as f:
            pq.write_table(pa.table({"id": pa.array(ids, pa.string()), "v": values}), f)


def _commit(store: RunStore, run: str, number: int, parts: dict[str, list[str]], taken: Taken | None = None):
    for part, ids in parts.items():
        _stage(store, run, part, ids)
    names = list(parts)
    n = sum(len(v) for v in parts.values())
    info = {"counts": {"inputs": n, "ok": n, "failed": 0}}
    taken = taken or Taken(store.log()[-1]["seq"] if store.log() else 0)
    result = store.commit(run, number, {"clips": names, "frames": names}, parts, taken, ("clips",), info)
    store.drop_staging(run)  # as a run does when it ends
    return result


def _rows(out: str, table: str = "clips") -> list[tuple]:
    t = read_table(out, table)
    return sorted(zip(t.column("id").to_pylist(), t.column("v").to_pylist()))


def test_a_commit_opens_no_data_file(tmp_path, monkeypatch):
    """1,000 staged parts committed: the driver opens log and record files only."""
    out = str(tmp_path / "out")
    store = RunStore(out)
    parts = {f"part-{k:04d}.parquet": [f"id{k}"] for k in range(1000)}
    for part, ids in parts.items():
        _stage(store, "r", part, ids, tables=("clips",))
    opened = []
    real_open = store.fs.open
    monkeypatch.setattr(store.fs, "open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k))
    monkeypatch.setattr(pq, "read_table", lambda *a, **k: pytest.fail("a commit read a table"))
    monkeypatch.setattr(pq, "ParquetFile", lambda *a, **k: pytest.fail("a commit opened a Parquet file"))
    info = {"counts": {"inputs": 1000, "ok": 1000, "failed": 0}}
    entry, dropped = store.commit("r", 0, {"clips": list(parts)}, parts, Taken(0), ("clips",), info)
    assert not dropped and not [p for p in opened if p.endswith(".parquet")], opened[:3]
    monkeypatch.undo()
    assert len(entry["files"]["clips"]) == 1000 and len(os.listdir(os.path.join(out, "clips"))) == 1
    assert sorted(read_table(out, "clips").column("id").to_pylist()) == sorted(f"id{k}" for k in range(1000))


def test_the_conflict_path_rewrites_only_parts_holding_shared_ids(tmp_path):
    out = str(tmp_path / "out")
    _commit(RunStore(out), "a", 0, {"pa.parquet": ["x1", "x2", "x3", "x4"]})
    jobs_seen = []

    def filter_files(jobs, so):
        jobs_seen.extend(jobs)
        return filter_in_process(jobs, so)

    b = RunStore(out, filter_files=filter_files)
    parts = {"p1.parquet": ["x1", "y1"], "p2.parquet": ["y2", "y3"], "p3.parquet": ["x4"]}
    entry, dropped = _commit(b, "b", 0, parts, Taken(0))  # b started before a committed
    assert dropped == {"x1", "x4"}
    # p1 and p3 in each of the two tables; p2 is committed as it was staged
    assert sorted(os.path.basename(j[0]) for j in jobs_seen) == ["p1.parquet", "p1.parquet", "p3.parquet", "p3.parquet"]
    assert [sorted(j[2]) for j in jobs_seen] == [["x1"], ["x4"], ["x1"], ["x4"]]
    folder = "b-c00000"
    assert entry["files"]["clips"] == [f"{folder}/p1-d1.parquet", f"{folder}/p2.parquet"]  # p3 had nothing left
    assert entry["counts"] == {"inputs": 3, "ok": 3, "failed": 0, "retried": 0, "dropped": 2}
    for table in ("clips", "frames"):
        ids = read_table(out, table).column("id").to_pylist()
        assert sorted(ids) == ["x1", "x2", "x3", "x4", "y1", "y2", "y3"], table
    pattern = os.path.join(out, "clips", "**", "*.parquet")
    assert sorted(pq.read_table(p).num_rows for p in glob.glob(pattern, recursive=True)) == [1, 2, 4]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_store_with_a_checkpoint_reads_like_one_without(tmp_path, monkeypatch, s3, where):
    monkeypatch.setattr(store_module, "CHECKPOINT_EVERY", 3)
    so = {} if where == "local" else s3
    out = str(tmp_path / "out") if where == "local" else f"s3://raydist-test/ckpt-{os.path.basename(tmp_path)}"
    for c in range(7):
        _commit(RunStore(out, so), f"r{c % 2}", c, {f"p{c}.parquet": [f"id{c}a", f"id{c}b"]})
    store = RunStore(out, so)
    with_ckpt = (store.log(), _rows_so(out, so), store.committed_files("frames"))
    assert store._checkpoint == 6 and [e["seq"] for e in store.log()] == list(range(1, 8))
    store.fs.rm(store.path("_log", "_last_checkpoint.json"))
    plain = RunStore(out, so)
    assert (plain.log(), _rows_so(out, so), plain.committed_files("frames")) == with_ckpt
    assert plain._checkpoint == 0


def _rows_so(out, so):
    t = read_table(out, "clips", so)
    return sorted(zip(t.column("id").to_pylist(), t.column("v").to_pylist()))


def test_old_outputs_with_one_file_per_commit_still_read_and_take_new_commits(tmp_path):
    out = str(tmp_path / "out")
    os.makedirs(os.path.join(out, "clips"))
    os.makedirs(os.path.join(out, "_log"))
    pq.write_table(pa.table({"id": ["old"], "v": [1.0]}), os.path.join(out, "clips", "part-old-c00000.parquet"))
    entry = {"seq": 1, "run_id": "old", "commit": 0, "files": {"clips": ["part-old-c00000.parquet"]}, "removed": {}}
    with open(os.path.join(out, "_log", "00000001.json"), "w") as f:
        f.write(__import__("json").dumps(entry))
    _commit(RunStore(out), "new", 0, {"p.parquet": ["n1"]})
    assert [i for i, _ in _rows(out)] == ["n1", "old"]


def test_the_anti_join_skips_exactly_the_committed_ids(ray_session, tmp_path):
    """The distributed path (a streamed manifest, an anti-join in Ray Data) and the driver's path
    for small runs give the same todo."""
    from raydist.pipeline.todo import plan

    out = str(tmp_path / "out")
    committed = [f"c{i:05d}" for i in range(0, 3000, 3)]  # every third input
    for k in range(0, len(committed), 250):
        _commit(RunStore(out), "r", k, {f"p{k}.parquet": committed[k : k + 250]})
    manifest = tmp_path / "m.parquet"
    ids = [f"c{i:05d}" for i in range(3000)] + ["new"]
    pq.write_table(pa.table({"id": ids, "uri": [f"{i}.wav" for i in ids]}), str(manifest))
    big = plan([str(manifest)], RunStore(out), ("clips",), small=0)
    assert isinstance(big.rows, ray_session.data.Dataset) and (big.inputs, big.todo) == (3001, 2001)
    got = pa.Table.from_pylist(big.rows.take_all())
    assert sorted(got.column("id").to_pylist()) == sorted(set(ids) - set(committed))
    assert set(got.column("uri").to_pylist()) == {str(tmp_path / f"{i}.wav") for i in set(ids) - set(committed)}
    small = plan([str(manifest)], RunStore(out), ("clips",))
    assert isinstance(small.rows, pa.Table) and (small.inputs, small.todo) == (3001, 2001)
    assert sorted(small.rows.to_pylist(), key=lambda r: r["id"]) == sorted(got.to_pylist(), key=lambda r: r["id"])


@pytest.mark.parametrize(
    "csv, message",
    [
        ("id,uri\nA,a.wav\nB,b.wav\nA,c.wav\n", "duplicate input id 'A'"),
        ("id,uri\nA,a.wav\n,b.wav\n", "b.wav has an empty id"),
        ("id,uri\nA,a.wav\nB,\n", "uri is empty"),
        ("id,path\nA,a.wav\n", "no 'uri' column"),
    ],
)
def test_a_streamed_manifest_names_its_problem(ray_session, tmp_path, csv, message):
    from raydist.pipeline.todo import input_dataset

    (tmp_path / "m.csv").write_text(csv)
    with pytest.raises(InputError, match=message):
        input_dataset([str(tmp_path / "m.csv")], small=0)[0].materialize()


def _small_commits(out: str, n: int = 12) -> None:
    for c in range(n):
        _commit(RunStore(out), "r", c, {f"p{c}.parquet": [f"id{c}-{j}" for j in range(5)]})


def test_compaction_keeps_exactly_the_same_rows(ray_session, tmp_path):
    from raydist.pipeline.compact import compact

    out = str(tmp_path / "out")
    _small_commits(out)
    before = {t: _rows(out, t) for t in ("clips", "frames")}
    result = compact(out, target_mb=1.0)
    assert (result.files_before, result.files_after, result.rows) == (24, 2, 120)
    for t in ("clips", "frames"):
        assert _rows(out, t) == before[t]
        files = glob.glob(os.path.join(out, t, "**", "*.parquet"), recursive=True)
        assert len(files) == 1 and pq.read_table(files[0]).num_rows == 60  # a plain glob: no duplicate
    assert RunStore(out).log()[-1]["kind"] == "compact"
    _commit(RunStore(out), "later", 0, {"p.parquet": ["late"]})  # runs go on committing after it
    assert len(_rows(out)) == 61
    assert compact(out, target_mb=1.0).files_before == 4  # per table: the compacted file and the new one


@pytest.mark.parametrize("when", ["before-commit", "during-moves"])
def test_compaction_killed_midway_loses_and_duplicates_nothing(ray_session, tmp_path, when):
    out = str(tmp_path / "out")
    _small_commits(out)
    before = _rows(out)
    address = ray_session.get_runtime_context().gcs_address
    code = (
        "import raydist.cluster.session as s; s.init_ray(address=%r);"
        "from raydist.pipeline.compact import compact; compact(%r, 1.0)" % (address, out)
    )
    env = {**os.environ, "RAYDIST_FAULT_MOVE_DELAY_S": "30"} if when == "during-moves" else dict(os.environ)
    env["RAYDIST_FAULT_COMPACT_DELAY_S"] = "30" if when == "before-commit" else "0"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(tmp_path, "err.txt"), "w"),
    )

    def ready() -> bool:
        if when == "before-commit":
            return bool(glob.glob(os.path.join(out, "_staging", "*", "clips", "*", "compact-*.parquet")))
        entries = RunStore(out).log()
        return entries[-1].get("kind") == "compact"

    deadline = time.time() + 300
    while not ready():
        assert proc.poll() is None and time.time() < deadline, "compaction ended before it could be killed"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _rows(out) == before  # through the log: nothing lost, nothing twice
    from raydist.pipeline.compact import compact

    again = compact(out, target_mb=1.0)  # recovery rolls the cut-short commit forward (or drops the staging)
    assert _rows(out) == before
    files = glob.glob(os.path.join(out, "clips", "**", "*.parquet"), recursive=True)
    assert sum(pq.read_table(p).num_rows for p in files) == len(before)
    assert not os.path.exists(os.path.join(out, "_staging"))
    assert again.files_after == (2 if when == "before-commit" else 0)  # clips and frames, or already done

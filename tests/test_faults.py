"""Faults survived on a real local Ray: a killed encoder actor, a killed training worker, an S3
endpoint that throttles, storage that fills up mid-run, a missing bucket, an unwritable output."""

from __future__ import annotations

import glob
import json
import os
import signal
import threading
import time

import boto3
import pytest
from kit import flaky_proxy, ray_actors, write_tone

from raydist.config import ModelConfig, OutputConfig, ResourceConfig, TrainConfig
from raydist.demo.corpus import write_corpus
from raydist.io.inputs import InputError, storage_options_for
from raydist.io.store import StoreError, read_table
from raydist.pipeline.embed import embed
from raydist.pipeline.runner import RunFailed
from raydist.train.trainer import TrainError, train

pytestmark = pytest.mark.slow


def _in_thread(fn, *args, **kwargs) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = fn(*args, **kwargs)
        except BaseException as e:  # handed to the test
            result["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


def _wait_for(predicate, thread: threading.Thread, timeout: float = 240):
    """Poll `predicate` until it returns something true, and return that."""
    deadline = time.time() + timeout
    while not (value := predicate()):
        assert thread.is_alive(), "the job ended before the fault could be injected"
        assert time.time() < deadline, "timed out waiting for the job to make progress"
        time.sleep(0.1)
    return value


def test_killed_encoder_actor_job_completes_with_one_row_per_input(ray_session, checkpoint, tmp_path):
    n = 40
    for i in range(n):
        write_tone(str(tmp_path / "corpus" / f"clip{i:02d}.wav"), freq=100 + 20 * i, seconds=3.0)
    out = str(tmp_path / "out")
    res, output = ResourceConfig(batch_size=2, decode_batch=4), OutputConfig(rows_per_file=2)
    before = {a["ActorID"] for a in ray_actors("EncodeBatch")}  # pools of earlier tests in this session
    thread, result = _in_thread(embed, [str(tmp_path / "corpus")], out, checkpoint, res, output, progress=False)
    alive = lambda: [a for a in ray_actors("EncodeBatch") if a["State"] == "ALIVE" and a["ActorID"] not in before]  # noqa: E731
    victim = _wait_for(alive, thread)[0]  # the actor has just loaded the model and takes its first batches
    os.kill(victim["Pid"], signal.SIGKILL)
    assert thread.is_alive(), "the job finished before the actor was killed"
    assert not glob.glob(os.path.join(out, "_log", "*.json"))  # nothing committed yet
    thread.join(600)
    assert "error" not in result, result.get("error")
    summary = result["value"]
    assert (summary.ok, summary.failed) == (n, 0)
    after = next(a for a in ray_actors("EncodeBatch") if a["ActorID"] == victim["ActorID"])
    assert after["NumRestarts"] >= 1 and after["Pid"] != victim["Pid"]  # Ray restarted the actor in a new process
    for table in ("clips", "frames"):
        ids = read_table(out, table, columns=["id"]).column("id").to_pylist()
        assert sorted(ids) == [f"clip{i:02d}.wav" for i in range(n)], table  # exactly one row each


def _latest_checkpoint_step(run_dir: str) -> int:
    try:
        with open(os.path.join(run_dir, "checkpoint_manager_snapshot.json")) as f:
            latest = json.load(f).get("latest_checkpoint_result") or {}
    except (OSError, ValueError):
        return 0
    return int((latest.get("metrics") or {}).get("step", 0))


def test_killed_training_worker_restarts_from_the_last_checkpoint(ray_session, tmp_path):
    manifest = write_corpus(str(tmp_path / "corpus"), n_clips=40, seed=1)
    out = str(tmp_path / "run")
    cfg = TrainConfig(workers=2, epochs=3, batch_size=16, checkpoint_every=2, max_failures=2)
    before = {a["ActorID"] for a in ray_actors("RayTrainWorker")}
    thread, result = _in_thread(train, [manifest], out, cfg, ModelConfig(hidden=32))
    _wait_for(lambda: _latest_checkpoint_step(os.path.join(out, "run")) >= 2, thread)
    saved = _latest_checkpoint_step(os.path.join(out, "run"))  # registered before the kill
    victims = [a["Pid"] for a in ray_actors("RayTrainWorker") if a["State"] == "ALIVE" and a["ActorID"] not in before]
    assert len(victims) == 2
    os.kill(victims[-1], signal.SIGKILL)
    assert thread.is_alive()
    thread.join(600)
    assert "error" not in result, result.get("error")
    run = result["value"]
    # the group restarted once, from a checkpoint no older than the one registered at the kill
    assert len(run.resumed_at) == 1 and run.resumed_at[0] >= saved > 0, (run.resumed_at, saved)
    steps = [h["step"] for h in run.history]
    per_epoch = steps[1]
    assert per_epoch > 0 and steps == [0, per_epoch, 2 * per_epoch, 3 * per_epoch]  # no step lost or repeated
    assert run.metrics["step"] == 3 * per_epoch and run.metrics["epoch"] == 3


@pytest.fixture()
def s3_corpus(s3, tmp_path):
    import s3fs

    fs = s3fs.S3FileSystem(key=s3["key"], secret=s3["secret"], endpoint_url=s3["endpoint_url"])
    prefix = f"raydist-test/faults-{tmp_path.name}"
    for i in range(4):
        local = write_tone(str(tmp_path / f"s{i}.flac"), freq=300 + 50 * i, seconds=1.5, sr=22050)
        fs.put(local, f"{prefix}/corpus/s{i}.flac")
    return fs, prefix


def _through(proxy: dict, s3: dict) -> dict:
    return {**storage_options_for(proxy["endpoint_url"]), "key": s3["key"], "secret": s3["secret"]}


def test_s3_that_throttles_is_retried(ray_session, s3, s3_corpus, checkpoint):
    fs, prefix = s3_corpus
    fs.put(checkpoint, f"{prefix}/model.pt")
    with flaky_proxy(s3["endpoint_url"], fail_every=4) as proxy:  # every 4th request: 503 SlowDown
        so = _through(proxy, s3)
        summary = embed([f"s3://{prefix}/corpus"], f"s3://{prefix}/emb", f"s3://{prefix}/model.pt", storage_options=so)
        assert proxy["failed"] >= 5  # the endpoint really failed requests: during listing, reads and writes
    assert (summary.ok, summary.failed) == (4, 0)
    clips = read_table(f"s3://{prefix}/emb", "clips", storage_options=s3)
    assert sorted(clips.column("id").to_pylist()) == [f"s{i}.flac" for i in range(4)]


def test_storage_full_mid_run_commits_nothing_and_a_rerun_finishes(ray_session, s3, s3_corpus, checkpoint):
    fs, prefix = s3_corpus
    out = f"s3://{prefix}/emb"
    with flaky_proxy(s3["endpoint_url"], fail_every=0, refuse_writes="/_staging/") as proxy:
        # the write probe passes; every Parquet part the run stages is refused (507, no space)
        with pytest.raises(RunFailed, match=r"stopped after \d+ of 4 inputs.*InsufficientStorage.*run the same"):
            embed([f"s3://{prefix}/corpus"], out, checkpoint, storage_options=_through(proxy, s3), progress=False)
        assert proxy["failed"] > 0
    assert not fs.glob(f"{prefix}/emb/_log/*.json")  # nothing committed
    assert read_table(out, "clips", storage_options=s3).num_rows == 0
    again = embed([f"s3://{prefix}/corpus"], out, checkpoint, storage_options=s3, progress=False)
    assert (again.ok, again.already_done) == (4, 0)
    ids = read_table(out, "clips", storage_options=s3).column("id").to_pylist()
    assert sorted(ids) == [f"s{i}.flac" for i in range(4)]
    assert not fs.exists(f"{prefix}/emb/_staging")


def test_missing_bucket_fails_fast_and_is_not_created(ray_session, s3, s3_corpus, checkpoint, tmp_path):
    fs, prefix = s3_corpus
    with pytest.raises(StoreError, match="bucket 'no-such-bucket' .* does not exist"):
        embed([f"s3://{prefix}/corpus"], "s3://no-such-bucket/emb", checkpoint, storage_options=s3)
    with pytest.raises(TrainError, match="bucket 'no-such-bucket' .* does not exist"):
        train([f"s3://{prefix}/corpus"], "s3://no-such-bucket/run", storage_options=s3)
    with pytest.raises(InputError, match="does not exist"):
        embed(["s3://no-such-bucket/corpus"], str(tmp_path / "out"), checkpoint, storage_options=s3)
    client = boto3.client("s3", endpoint_url=s3["endpoint_url"])
    assert "no-such-bucket" not in [b["Name"] for b in client.list_buckets()["Buckets"]]


def test_unwritable_output_fails_before_any_work(ray_session, checkpoint, tmp_path):
    write_tone(str(tmp_path / "corpus" / "a.wav"))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot write to"):
        embed([str(tmp_path / "corpus")], str(blocker / "out"), checkpoint)
    with pytest.raises(TrainError, match="cannot write to"):
        train([str(tmp_path / "corpus")], str(blocker / "run"))
    assert blocker.read_text() == "not a directory"

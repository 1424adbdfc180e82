"""Embedding end to end on Ray Data: local folder with a bad-input matrix, readers without
raydist, exactly-once reruns, crash recovery, and S3 through moto's server."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from kit import write_tone

from raydist.audio import decode
from raydist.audio.synth import tone
from raydist.config import OutputConfig, SegmentConfig
from raydist.embedding.encode import encode_many
from raydist.embedding.features import clip_features
from raydist.io.schema import CLIPS, ERRORS, EVENTS, SEGMENTS, frames_schema
from raydist.io.store import RunStore, read_table
from raydist.model.checkpoint import load_model
from raydist.pipeline.embed import embed

pytestmark = pytest.mark.slow

GOOD = {  # file -> (seconds, rate, channels)
    "a/tone16k.wav": (2.0, 16000, 1),
    "a/stereo44k.flac": (3.0, 44100, 2),
    "b/narrow8k.wav": (1.5, 8000, 1),
    "b/hires192k.wav": (1.0, 192000, 1),
    "b/six_channels.wav": (1.0, 48000, 6),
    "c/vorbis.ogg": (1.2, 32000, 2),
    "c/speechrate.mp3": (1.1, 22050, 1),
    "c/opus48k.opus": (1.0, 48000, 1),
    "long/ninety_s.wav": (90.0, 16000, 1),  # over one 60 s chunk: chunked and stitched
}
BAD = {  # id -> (stage, error type)
    "bad/random_bytes.wav": ("decode", "DecodeError"),
    "bad/zero_bytes.wav": ("decode", "DecodeError"),
    "bad/text_as.mp3": ("decode", "DecodeError"),
    "bad/header_only.wav": ("validate", "EmptyAudioError"),
    "bad/nan.wav": ("validate", "NonFiniteAudioError"),
    "bad/20ms.wav": ("validate", "TooShortError"),
}


def make_corpus(root: str) -> None:
    for name, (seconds, sr, ch) in GOOD.items():
        os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
        write_tone(os.path.join(root, name), freq=440, seconds=seconds, sr=sr, channels=ch)
    sf.write(os.path.join(root, "a/silence.wav"), np.zeros(16000, np.float32), 16000)
    os.makedirs(os.path.join(root, "bad"))
    rng = np.random.default_rng(0)
    open(os.path.join(root, "bad/random_bytes.wav"), "wb").write(rng.bytes(5000))
    open(os.path.join(root, "bad/zero_bytes.wav"), "wb").close()
    open(os.path.join(root, "bad/text_as.mp3"), "w").write("not an mp3 at all\n" * 50)
    sf.write(os.path.join(root, "bad/header_only.wav"), np.zeros((0, 1), np.float32), 16000)
    nan = tone(440, 0.5, 16000)
    nan[100] = np.nan
    sf.write(os.path.join(root, "bad/nan.wav"), nan, 16000, subtype="FLOAT")
    sf.write(os.path.join(root, "bad/20ms.wav"), tone(440, 0.02, 16000), 16000)
    open(os.path.join(root, "README.txt"), "w").write("not audio, not listed")


@pytest.fixture(scope="module")
def run(ray_session, tmp_path_factory, checkpoint):
    root = str(tmp_path_factory.mktemp("corpus"))
    make_corpus(root)
    out = str(tmp_path_factory.mktemp("emb"))
    summary = embed([root], out, checkpoint, output=OutputConfig(rows_per_file=8))
    return root, out, summary


def test_every_input_ends_as_a_row_or_an_error_row(run):
    root, out, summary = run
    n_good = len(GOOD) + 1  # + silence
    assert (summary.inputs, summary.ok, summary.failed) == (n_good + len(BAD), n_good, len(BAD))
    assert summary.skipped_extensions == {".txt": 1}
    clips, errors = read_table(out, "clips"), read_table(out, "errors")
    assert sorted(clips.column("id").to_pylist()) == sorted([*GOOD, "a/silence.wav"])
    got = {r["id"]: (r["stage"], r["error_type"]) for r in errors.to_pylist()}
    assert got == BAD
    assert all(r["uri"].endswith(r["id"]) and r["message"] for r in errors.to_pylist())
    assert "20ms.wav is 20.0 ms long" in next(r["message"] for r in errors.to_pylist() if r["id"] == "bad/20ms.wav")


def test_clip_rows_describe_the_source(run):
    _, out, _ = run
    rows = {r["id"]: r for r in read_table(out, "clips").to_pylist()}
    for name, (seconds, sr, ch) in GOOD.items():
        r = rows[name]
        assert (r["sample_rate"], r["channels"]) == (sr, ch), name
        assert abs(r["duration_s"] - seconds) < 0.1, (name, r["duration_s"])
        assert r["n_frames"] == pytest.approx(seconds * 12.5, abs=2), (name, r["n_frames"])
        assert len(r["embedding"]) == 2 * (32 + 32) and np.isfinite(r["embedding"]).all()  # latents, first stage
    assert rows["a/silence.wav"]["active_fraction"] == 0.0


def test_frames_and_segments_line_up_with_clips(run, checkpoint):
    _, out, _ = run
    m = load_model(checkpoint)
    clips = {r["id"]: r for r in read_table(out, "clips").to_pylist()}
    frames = read_table(out, "frames")
    assert frames.schema.field("mean").type == frames_schema("float16").field("mean").type
    for r in frames.to_pylist():
        assert len(r["mean"]) == r["n_frames"] == clips[r["id"]]["n_frames"] == len(r["novelty"]) == len(r["energy"])
        assert all(len(v) == 32 for v in r["mean"])
        assert r["frame_rate"] == 12.5 and r["start_s"] == pytest.approx(0.035)
        assert r["logvar"] is None
    segs, events = read_table(out, "segments").to_pylist(), read_table(out, "events").to_pylist()
    frame_rows = {r["id"]: r for r in frames.to_pylist()}
    frame_of = lambda t: round((t / 0.01 + 0.5) / 8)  # noqa: E731  # a boundary before frame j sits at (8 j - 0.5) hops
    for clip_id, clip in clips.items():
        latents = np.array(frame_rows[clip_id]["mean"], np.float32)
        # the clip embedding opens with the mean and std over time of the latent means
        np.testing.assert_allclose(clip["embedding"][:32], latents.mean(0), rtol=1e-2, atol=5e-3)
        np.testing.assert_allclose(clip["embedding"][32:64], latents.std(0), rtol=1e-2, atol=5e-3)
        # source segments tile the clip, and are what clip_features makes of the file encoded alone
        mine = sorted((s for s in segs if s["id"] == clip_id), key=lambda s: s["segment"])
        assert len(mine) == clip["n_segments"] >= 1
        assert mine[0]["start_s"] == 0.0 and mine[-1]["end_s"] == pytest.approx(clip["duration_s"])
        assert all(a["end_s"] == b["start_s"] for a, b in zip(mine, mine[1:]))  # contiguous
        lat = encode_many(m, [decode(clip["uri"], m.features.sample_rate)[0]])[0]
        args = (lat.mean, lat.energy, clip["duration_s"], SegmentConfig(), 8, m.features, lat.cepstra, lat.early)
        want = clip_features(*args, mel_energy=lat.mel_energy, bands=lat.bands).segments
        assert [s["start_s"] for s in mine] == pytest.approx(list(want.start), abs=1e-9)
        assert [s["active_fraction"] for s in mine] == pytest.approx(list(want.active), abs=1e-6)
        np.testing.assert_allclose([s["embedding"] for s in mine], want.embedding, rtol=1e-2, atol=5e-3)
        # events: in order, within the clip, mostly active, each the mean latent of all its frames
        ev = sorted((e for e in events if e["id"] == clip_id), key=lambda e: e["event"])
        assert len(ev) == clip["n_events"]
        assert all(a["end_s"] <= b["start_s"] for a, b in zip(ev, ev[1:]))
        for e in ev:
            j0, j1 = frame_of(e["start_s"]) if e["start_s"] > 0 else 0, frame_of(e["end_s"])
            j1 = len(latents) if e["end_s"] == pytest.approx(clip["duration_s"]) else j1
            assert j1 > j0 and e["active_fraction"] >= 0.5
            np.testing.assert_allclose(e["embedding"], latents[j0:j1].mean(0), rtol=1e-2, atol=5e-3)
    assert clips["a/silence.wav"]["n_events"] == 0 and clips["a/silence.wav"]["n_segments"] == 1


def test_outputs_read_without_raydist(run):
    _, out, _ = run
    import duckdb
    import pandas as pd
    import polars as pl

    clips_glob = os.path.join(out, "clips", "**", "*.parquet")  # one folder per commit
    n = duckdb.sql(f"select count(*) from '{clips_glob}'").fetchall()[0][0]
    assert n == len(GOOD) + 1
    dims = duckdb.sql(f"select len(embedding) from '{clips_glob}' limit 1").fetchall()[0][0]
    assert dims == 128
    first = duckdb.sql(f"select mean[1] from '{os.path.join(out, 'frames', '**', '*.parquet')}' limit 1").fetchall()[0][
        0
    ]
    assert len(first) == 32
    assert len(pl.read_parquet(clips_glob)) == n
    assert len(pd.read_parquet(os.path.join(out, "segments"))) == len(read_table(out, "segments"))
    for table, schema in (("clips", CLIPS), ("events", EVENTS), ("segments", SEGMENTS), ("errors", ERRORS)):
        for path in glob.glob(os.path.join(out, table, "*", "*.parquet")):
            t = pq.read_table(path)
            assert t.schema.remove_metadata().equals(schema.remove_metadata(), check_metadata=False), table
            assert t.schema.metadata[b"raydist.schema_version"] == b"3"
            assert b"raydist.model_sha256" in t.schema.metadata


def test_run_manifest_records_the_run(run):
    _, out, summary = run
    store = RunStore(out)
    (manifest,) = store.manifests()
    assert manifest["state"] == "complete" and manifest["run_id"] == summary.run_id
    counts = {"inputs": summary.inputs, "ok": summary.ok, "failed": summary.failed, "retried": 0, "dropped": 0}
    assert manifest["counts"] == counts
    (entry,) = store.log()  # one commit: its files are the only files of each table
    assert manifest["commits"] == [entry["seq"]] == [1] and entry["removed"] == {}
    assert entry["counts"] == counts
    for table in ("clips", "frames", "segments", "events", "errors"):
        placed = [os.path.relpath(p, os.path.join(out, table)) for p in glob.glob(os.path.join(out, table, "*", "*"))]
        assert sorted(placed) == entry["files"][table]
    assert len(manifest["model"]["sha256"]) == 64
    assert manifest["feature_config"]["sample_rate"] == 16000
    assert set(manifest["versions"]) >= {"raydist", "ray", "torch", "torchaudio", "pyarrow"}
    assert not os.path.exists(os.path.join(out, "_staging"))


def test_runs_command_lists_the_runs_of_an_output(run):
    from typer.testing import CliRunner

    from raydist.cli import app

    _, out, summary = run
    result = CliRunner().invoke(app, ["runs", out])
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.output.splitlines() if ln.startswith(summary.run_id))
    assert line.split()[1:3] == ["embed", "complete"]
    assert line.split()[-5:-1] == ["1", str(summary.ok), str(summary.failed), "0"]  # commits ok failed dropped
    assert (
        "1 commits; files: clips 2, errors 2, events 2, frames 2, segments 2" in result.output
    )  # 16 inputs, 8 per file
    missing = CliRunner().invoke(app, ["runs", os.path.join(out, "nothing-here")])
    assert missing.exit_code == 2 and "holds no raydist run" in missing.output


def test_rerun_processes_only_what_is_missing(run, checkpoint, tmp_path):
    root, out, _ = run
    again = embed([root], out, checkpoint)
    assert (again.ok, again.failed, again.already_done) == (0, 0, again.inputs)
    write_tone(os.path.join(root, "a/new.wav"), seconds=1.0)
    more = embed([root], out, checkpoint)
    assert (more.ok, more.failed) == (1, 0)
    ids = read_table(out, "clips").column("id").to_pylist()
    assert len(ids) == len(set(ids)) == len(GOOD) + 2
    os.remove(os.path.join(root, "a/new.wav"))


def test_retry_errors_replaces_the_error_rows_of_fixed_inputs(ray_session, checkpoint, tmp_path):
    root, out = tmp_path / "c", str(tmp_path / "out")
    for i in range(2):
        write_tone(str(root / f"good{i}.wav"), freq=300 + 100 * i)
    (root / "broken.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    sf.write(str(root / "short.wav"), tone(440, 0.02, 16000), 16000)
    first = embed([str(root)], out, checkpoint)
    assert (first.ok, first.failed) == (2, 2)
    (old_errors,) = glob.glob(os.path.join(out, "errors", "*", "*.parquet"))
    saved = open(old_errors, "rb").read()
    assert embed([str(root)], out, checkpoint).already_done == 4  # errors are final without the flag

    write_tone(str(root / "broken.wav"), freq=500)  # the user fixes one input
    again = embed([str(root)], out, checkpoint, retry_errors=True)
    assert (again.ok, again.failed, again.retried, again.already_done) == (1, 1, 2, 2)
    assert sorted(read_table(out, "clips").column("id").to_pylist()) == ["broken.wav", "good0.wav", "good1.wav"]
    raw = pq.read_table(os.path.join(out, "errors"))  # plain pyarrow over the folder: no stale rows
    assert raw.column("id").to_pylist() == ["short.wav"]
    assert read_table(out, "errors").column("id").to_pylist() == ["short.wav"]
    last = RunStore(out).log()[-1]
    assert last["removed"] == {"errors": [os.path.relpath(old_errors, os.path.join(out, "errors"))]}
    assert last["counts"]["retried"] == 2 and RunStore(out).manifests()[-1]["counts"]["retried"] == 2

    # a crash after the commit point but before the old part was deleted: readers skip it, and
    # the next run's recovery deletes it
    os.makedirs(os.path.dirname(old_errors), exist_ok=True)
    open(old_errors, "wb").write(saved)
    assert read_table(out, "errors").num_rows == 1
    assert embed([str(root)], out, checkpoint).already_done == 4
    assert not os.path.exists(old_errors)


def test_interrupted_commit_rolls_forward_and_dead_staging_is_dropped(ray_session, checkpoint, tmp_path):
    root = tmp_path / "c"
    for i in range(4):
        write_tone(str(root / f"t{i}.wav"), freq=200 + 100 * i)
    out = str(tmp_path / "out")
    embed([str(root)], out, checkpoint)
    store = RunStore(out)
    (m,) = store.log()
    # simulate a crash between the log entry and the moves: put the files back in staging
    for table, files in m["files"].items():
        for name in files:
            os.makedirs(os.path.dirname(os.path.join(out, "_staging", m["run_id"], table, name)), exist_ok=True)
            os.rename(os.path.join(out, table, name), os.path.join(out, "_staging", m["run_id"], table, name))
            os.rmdir(os.path.dirname(os.path.join(out, table, name)))  # the commit's folder, now empty
    os.makedirs(os.path.join(out, "_staging", "dead-run", "clips"))
    open(os.path.join(out, "_staging", "dead-run", "clips", "part-x.parquet"), "w").write("half")
    assert read_table(out, "clips").num_rows == 4  # committed: read from staging until rolled forward
    again = embed([str(root)], out, checkpoint)
    assert again.already_done == 4 and again.ok == 0
    assert read_table(out, "clips").num_rows == 4
    assert not os.path.exists(os.path.join(out, "_staging"))


def _embed_in_subprocess(address: str, args: tuple, env: dict | None = None, **kw) -> subprocess.Popen:
    """`embed(*args)` in a new driver process on the session's Ray."""
    code = (
        "import raydist.cluster.session as s; s.init_ray(address=%r);"
        "from raydist.pipeline.embed import embed; from raydist.config import OutputConfig, ResourceConfig;"
        # decode blocks of 4 files: parts (and commits) arrive one after another, not all at the end
        "embed(*%r, ResourceConfig(batch_size=2, decode_batch=4), OutputConfig(**%r), storage_options=%r, progress=False)"
        % (address, args, kw.pop("output", {}), kw.pop("storage_options", None))
    )
    return subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **(env or {})}, **kw)


def _committed_entries(fs, out: str) -> list[str]:
    fs.invalidate_cache()
    return fs.glob(f"{out}/_log/*.json")


def _kill_and_rerun(address, fs, root: str, out: str, n: int, when: str, checkpoint, so=None):
    """Start an embed of `root` into `out` in a driver process, SIGKILL it at moment `when`, then
    rerun in this process: exactly one row per input, and the rerun processes only what was not
    committed before the kill."""
    output = {"rows_per_file": 2, "commit_every": 10 if when != "before-first-commit" else 10_000}
    env = {"RAYDIST_FAULT_MOVE_DELAY_S": "3"} if when == "during-moves" else {}
    proc = _embed_in_subprocess(
        address, ([root], out, checkpoint), env, output=output, storage_options=so,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    store_path = out.split("://", 1)[-1]

    def ready() -> bool:
        fs.invalidate_cache()
        if when == "before-first-commit":
            return bool(fs.glob(f"{store_path}/_staging/*/clips/*.parquet"))
        entries = fs.glob(f"{store_path}/_log/*.json")
        if when == "between-commits":
            return len(entries) >= 1
        # during-moves: the first commit's entry is written but its files are not all in place yet
        return len(entries) >= 1 and not all(fs.exists(f"{store_path}/{t}") for t in ("errors", "segments"))

    deadline = time.time() + 180
    while time.time() < deadline and not ready():
        assert proc.poll() is None, "embed finished or died before it could be killed"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    committed = read_table(out, "clips", storage_options=so).column("id").to_pylist()
    assert len(committed) < n, "the run finished before the kill"
    if when == "before-first-commit":
        assert committed == [] and not _committed_entries(fs, store_path)
    else:
        assert committed, "nothing was committed before the kill"
    again = embed([root], out, checkpoint, storage_options=so, progress=False)
    assert (again.ok + again.failed, again.already_done) == (n - len(committed), len(committed))
    for table in ("clips", "frames", "segments"):
        ids = read_table(out, table, storage_options=so, columns=["id"]).column("id").to_pylist()
        assert sorted(set(ids)) == sorted(f"clip{i:02d}.wav" for i in range(n)), table
        if table != "segments":
            assert len(ids) == n, table
    fs.invalidate_cache()
    assert not fs.exists(f"{store_path}/_staging")


@pytest.mark.parametrize("when", ["before-first-commit", "between-commits", "during-moves"])
def test_killed_driver_then_rerun_gives_exactly_one_row_per_input(ray_session, checkpoint, tmp_path, when):
    import fsspec

    root = tmp_path / "corpus"
    n = 90  # enough that the run is still going when the moment comes
    for i in range(n):
        write_tone(str(root / f"clip{i:02d}.wav"), freq=100 + 20 * i, seconds=3.0)
    address = ray_session.get_runtime_context().gcs_address
    _kill_and_rerun(address, fsspec.filesystem("file"), str(root), str(tmp_path / "out"), n, when, checkpoint)


def test_killed_driver_on_s3_then_rerun_gives_exactly_one_row_per_input(ray_session, s3, checkpoint, tmp_path):
    import s3fs

    fs = s3fs.S3FileSystem(key=s3["key"], secret=s3["secret"], endpoint_url=s3["endpoint_url"])
    root = tmp_path / "corpus"
    n = 90
    for i in range(n):
        write_tone(str(root / f"clip{i:02d}.wav"), freq=100 + 20 * i, seconds=3.0)
    address = ray_session.get_runtime_context().gcs_address
    out = "s3://raydist-test/killed-driver"
    _kill_and_rerun(address, fs, str(root), out, n, "between-commits", checkpoint, so=s3)


def test_embed_from_and_to_s3(ray_session, s3, checkpoint, tmp_path):
    import s3fs

    fs = s3fs.S3FileSystem(**{k: v for k, v in s3.items() if k != "endpoint_url"}, endpoint_url=s3["endpoint_url"])
    for i in range(3):
        local = write_tone(str(tmp_path / f"s{i}.flac"), freq=300 + 50 * i, seconds=1.5, sr=22050)
        fs.put(local, f"raydist-test/corpus/s{i}.flac")
    fs.pipe("raydist-test/corpus/broken.wav", b"RIFF....WAVEjunk")
    fs.put(checkpoint, "raydist-test/models/model.pt")
    out = "s3://raydist-test/emb"
    summary = embed(["s3://raydist-test/corpus"], out, "s3://raydist-test/models/model.pt", storage_options=s3)
    assert (summary.ok, summary.failed) == (3, 1)
    clips = read_table(out, "clips", storage_options=s3)
    assert sorted(clips.column("id").to_pylist()) == ["s0.flac", "s1.flac", "s2.flac"]
    assert clips.column("uri")[0].as_py().startswith("s3://raydist-test/corpus/")
    errors = read_table(out, "errors", storage_options=s3).to_pylist()
    assert [(e["id"], e["stage"]) for e in errors] == [("broken.wav", "decode")]
    assert not fs.exists("raydist-test/emb/_staging")
    again = embed(["s3://raydist-test/corpus"], out, "s3://raydist-test/models/model.pt", storage_options=s3)
    assert again.already_done == 4 and again.ok == 0

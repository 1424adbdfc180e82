"""Runs as users start them, in real processes: interrupted by SIGINT or SIGTERM, started twice
on one output, started while another is mid-way, killed with their local Ray."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from kit import cmdline, write_tone

from raydist.cluster.session import _descendants, _start_time, reap_orphans, running
from raydist.io.store import RunStore, read_table
from raydist.pipeline.embed import embed

FILES = 40  # distinct files; a manifest repeats them under many ids


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("runs-corpus")
    return [write_tone(str(root / f"f{i:02d}.wav"), freq=150 + 25 * i, seconds=4.0) for i in range(FILES)]


def manifest(files: list[str], path: str, n: int, prefix: str = "x", uri_prefix: str = "") -> str:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["uri", "id"])
        for i in range(n):
            w.writerow([uri_prefix + files[i % len(files)], f"{prefix}{i:05d}"])
    return path


def cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "raydist.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def wait_for_commits(out: str, proc: subprocess.Popen, n: int = 1, timeout: float = 600) -> None:
    """Wait for `n` commits of the run on `out`; the deadline is for a machine loaded several times
    over (four busy loops beside the test on 2 cores took over 240 s to the first commit)."""
    deadline = time.time() + timeout
    while len(RunStore(out).log()) < n:
        assert proc.poll() is None, f"the run ended before {n} commits: {proc.stdout.read()}"
        assert time.time() < deadline, "no commit in time"
        time.sleep(0.2)


def one_row_per_input(out: str, n: int, prefix: str = "x", so: dict | None = None) -> None:
    expected = [f"{prefix}{i:05d}" for i in range(n)]
    for table in ("clips", "frames"):
        ids = read_table(out, table, so, columns=["id"]).column("id").to_pylist()
        assert sorted(ids) == expected, table
    assert read_table(out, "errors", so).num_rows == 0
    seg_ids = set(read_table(out, "segments", so, columns=["id"]).column("id").to_pylist())
    assert seg_ids == set(expected)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_commits_finished_work_and_says_how_to_continue(ray_session, checkpoint, files, tmp_path, sig):
    """SIGINT runs the command as a user does (its own local Ray: every Ray process it started is
    gone afterwards); SIGTERM joins the test session's Ray, like a job on a cluster."""
    n, out = 4_000, str(tmp_path / "out")
    m = manifest(files, str(tmp_path / "m.csv"), n)
    args = ["embed", m, "--model", checkpoint, "--out", out, "--commit-seconds", "2"]
    if sig == signal.SIGTERM:
        args += ["--address", ray_session.get_runtime_context().gcs_address]
    proc = cli(*args)
    wait_for_commits(out, proc)
    started = [(p, _start_time(p)) for p in _descendants(proc.pid)]  # Ray's processes, when it runs its own
    proc.send_signal(sig)
    sent = time.time()
    text = proc.communicate(timeout=120)[0]
    took = time.time() - sent
    assert proc.returncode == 128 + sig, text[-3000:]
    found = re.search(
        r"interrupted by (SIG\w+): (\d+) of (\d+) inputs are committed .* (\d+) remain\. To continue: (.*)", text
    )
    assert found, text[-3000:]
    name, committed, total, remain, command = found.groups()
    assert (name, int(total), int(committed) + int(remain)) == (sig.name, n, n)
    assert command.startswith("raydist embed ") and f"--out {out}" in command
    assert 0 < int(committed) < n and took < 60
    assert "Traceback" not in text and "PC: @" not in text
    assert read_table(out, "clips").num_rows == int(committed)
    assert RunStore(out).records()[-1]["state"] == "interrupted"
    if sig == signal.SIGINT:  # exiting processes take their time on a loaded machine; zombies count as gone
        deadline = time.monotonic() + 60
        while any(running(p, st) for p, st in started) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [p for p, st in started if running(p, st)] == []
    rest = embed([m], out, checkpoint, progress=False)
    assert (rest.ok, rest.already_done) == (int(remain), int(committed))
    one_row_per_input(out, n)


def sigint_once(ready) -> None:
    """SIGINT this process (the test's own) once `ready()` is true, from a helper thread."""

    def wait_then_signal() -> None:
        while not ready():
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=wait_then_signal, daemon=True).start()


def pipeline_threads() -> list[str]:
    """This process's Ray Data executors and raydist's collector threads still running."""
    from ray.data._internal.execution.streaming_executor import StreamingExecutor

    return [t.name for t in threading.enumerate() if isinstance(t, StreamingExecutor) or t.name == "raydist-work"]


def test_a_failing_stop_still_waits_for_the_work_to_end():
    """On a signal, `stop()` asks the work to end; if it fails (its last commit), the work is still
    waited for before the failure is raised: the CLI shuts Ray down next."""
    from raydist.signals import run_until_signal

    started, asked, ended = threading.Event(), threading.Event(), []

    def work() -> None:
        started.set()
        asked.wait()
        time.sleep(0.5)  # winding down after being asked
        ended.append(True)

    def stop() -> None:
        asked.set()
        raise OSError("the last commit failed")

    sigint_once(started.is_set)
    with pytest.raises(OSError, match="last commit failed"):
        run_until_signal(work, stop)
    assert ended == [True]


@pytest.mark.slow
def test_an_interrupted_run_leaves_no_pipeline_thread_running(ray_session, checkpoint, files, tmp_path):
    """The CLI shuts Ray down right after an interrupt: a pipeline thread still inside Ray then
    can crash the process (once in CI: exit -11 instead of 130). The run ends its pipeline first."""
    from raydist.config import OutputConfig, ResourceConfig
    from raydist.pipeline.runner import RunInterrupted

    n, out = 4_000, str(tmp_path / "out")
    m = manifest(files, str(tmp_path / "m.csv"), n)
    sigint_once(lambda: bool(RunStore(out).log()))  # after the first commit
    with pytest.raises(RunInterrupted) as caught:
        embed([m], out, checkpoint, ResourceConfig(actors=1), OutputConfig(commit_seconds=2), progress=False)
    assert pipeline_threads() == []
    committed = caught.value.summary.ok
    assert 0 < committed < n and caught.value.remaining == n - committed
    assert read_table(out, "clips").num_rows == committed
    assert RunStore(out).records()[-1]["state"] == "interrupted"


@pytest.mark.slow
def test_an_interrupted_decompress_keeps_whole_files_and_leaves_no_pipeline_thread(
    ray_session, checkpoint, files, tmp_path
):
    import soundfile as sf

    from raydist.pipeline.compress import compress
    from raydist.pipeline.decompress import decompress
    from raydist.signals import Interrupted

    n, codes, dec = 400, str(tmp_path / "codes"), str(tmp_path / "decoded")
    assert compress([manifest(files, str(tmp_path / "m.csv"), n)], codes, checkpoint, progress=False).ok == n

    sigint_once(lambda: os.path.isdir(dec) and any(f.endswith(".wav") for f in os.listdir(dec)))
    with pytest.raises(Interrupted, match=r"decompress interrupted by SIGINT: \d+ of 400 clips written"):
        decompress(codes, checkpoint, dec, progress=False)
    assert pipeline_threads() == []
    written = [f for f in os.listdir(dec) if f.endswith(".wav")]
    assert 0 < len(written) < n
    for f in written:  # each file whole: the tones are 4 s at 16 kHz
        data, sr = sf.read(os.path.join(dec, f))
        assert (sr, len(data)) == (16000, 64000), f


def embed_driver(address: str, checkpoint: str, m: str, out: str, output: dict, so: dict | None = None):
    """`embed` in a driver process of its own on the session's Ray; prints its counts."""
    code = (
        "import raydist.cluster.session as s; s.init_ray(address=%r);"
        "from raydist.pipeline.embed import embed; from raydist.config import OutputConfig, ResourceConfig;"
        "r = embed([%r], %r, %r, ResourceConfig(actors=1), OutputConfig(**%r), storage_options=%r, progress=False);"
        "print('RESULT', r.ok, r.dropped, r.already_done)"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code % (address, m, out, checkpoint, output, so)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("where", ["local", "s3"])
def test_two_runs_started_together_give_one_row_per_input(ray_session, checkpoint, files, tmp_path, s3, where):
    n = 600
    address = ray_session.get_runtime_context().gcs_address
    so = s3 if where == "s3" else None
    out = f"s3://raydist-test/two-{os.path.basename(tmp_path)}" if so else str(tmp_path / "out")
    m = manifest(files, str(tmp_path / "m.csv"), n)
    start = [embed_driver(address, checkpoint, m, out, {"commit_every": 100}, so) for _ in range(2)]
    results = []
    for p in start:
        text = p.communicate(timeout=600)[0]
        assert p.returncode == 0, text[-3000:]
        results.append([int(x) for x in re.search(r"RESULT (\d+) (\d+) (\d+)", text).groups()])
    one_row_per_input(out, n, so=so)
    kept = sum(ok for ok, _, _ in results)
    assert kept == n, results  # what each run kept adds up to the inputs: none twice, none lost


@pytest.mark.slow
def test_a_run_started_mid_way_leaves_the_first_runs_staging_alone(ray_session, checkpoint, files, tmp_path, capfd):
    n, out = 2_000, str(tmp_path / "out")
    address = ray_session.get_runtime_context().gcs_address
    m = manifest(files, str(tmp_path / "m.csv"), n)
    first = embed_driver(address, checkpoint, m, out, {"commit_seconds": 3600, "rows_per_file": 50})
    deadline = time.time() + 240
    while not any(d.endswith("clips") for d, _, _ in os.walk(os.path.join(out, "_staging"))):
        assert first.poll() is None and time.time() < deadline, "the first run ended before it staged a part"
        time.sleep(0.2)
    second = embed([m], out, checkpoint, progress=False)  # started mid-way; both finish
    assert "leaving the staging of run" in capfd.readouterr().out
    text = first.communicate(timeout=600)[0]
    assert first.returncode == 0, text[-3000:]
    ok, dropped, _ = (int(x) for x in re.search(r"RESULT (\d+) (\d+) (\d+)", text).groups())
    assert ok + second.ok == n and ok + dropped == n  # the later commit drops what the other one holds
    one_row_per_input(out, n)


AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


@pytest.mark.slow
def test_ray_processes_a_killed_local_run_left_are_stopped_by_the_next(tmp_path):
    code = "import raydist.cluster.session as s; s.init_ray(num_cpus=1); print('up', flush=True); input()"
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "up"
    deadline = time.time() + 60  # the agents (what outlives a killed driver) start beside the raylet
    while sum(cmdline(p).startswith(AGENTS) for p in _descendants(proc.pid)) < 2 and time.time() < deadline:
        time.sleep(0.2)
    started = [(p, _start_time(p)) for p in _descendants(proc.pid)]
    agents = [(p, st) for p, st in started if cmdline(p).startswith(AGENTS)]
    assert len(agents) == 2, [cmdline(p) for p, _ in started]
    proc.kill()
    proc.wait()
    # What follows the driver (raylet, GCS, workers) exits on its own, in its own time on a loaded
    # machine; the agents are what stays. A zombie (exited, not yet reaped by PID 1) counts as gone.
    deadline = time.monotonic() + 120
    while any(running(p, st) for p, st in started if (p, st) not in agents) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(running(p, st) for p, st in agents), "the agents did not outlive the killed driver: nothing to show"
    assert reap_orphans() >= len(agents)  # (and any other dead local run's leftovers)
    assert [p for p, st in started if running(p, st)] == []


def test_after_shutdown_a_call_into_ray_starts_no_new_ray():
    """A thread still calling Ray after the command's shutdown (an abandoned pipeline) gets an error."""
    code = (
        "import threading, ray, raydist.cluster.session as s; s.init_ray(num_cpus=1); s.shutdown()\n"
        "def late():\n"
        "    try: ray.put(1); print('put', flush=True)\n"
        "    except Exception as e: print('refused', type(e).__name__, flush=True)\n"
        "t = threading.Thread(target=late); t.start(); t.join()\n"
        "print('initialized', ray.is_initialized(), flush=True)"
    )
    text = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "refused" in text and "initialized False" in text, text


@pytest.mark.slow
def test_a_signal_stops_training_and_names_the_checkpoint_resume_uses(ray_session, tmp_path):
    from raydist.demo.corpus import write_corpus

    corpus = write_corpus(str(tmp_path / "corpus"), n_clips=40, seed=3)
    out = str(tmp_path / "run")
    address = ray_session.get_runtime_context().gcs_address
    proc = cli(
        "train",
        corpus,
        "--out",
        out,
        "--epochs",
        "200",
        "--batch-size",
        "8",
        "--checkpoint-every",
        "10",
        "--address",
        address,
    )
    deadline = time.time() + 300
    run_dir = os.path.join(out, "run")  # Ray Train's checkpoints
    while not (os.path.isdir(run_dir) and any(d.startswith("checkpoint_") for d in os.listdir(run_dir))):
        assert proc.poll() is None and time.time() < deadline, "training ended before its first checkpoint"
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    text = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, text[-3000:]
    found = re.search(r"`--resume` continues from the checkpoint at step (\d+).*To continue: (.*)", text)
    assert found and int(found.group(1)) > 0, text[-3000:]
    assert found.group(2).startswith("raydist train ") and found.group(2).endswith("--resume")
    assert "Traceback" not in text

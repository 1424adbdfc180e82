"""CLI: help explains; bad paths and options fail before Ray starts (exit code 2), failures at run
time exit 1; every failure is one line without a traceback; Ray's logs stay off the console."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from raydist.cli import app

runner = CliRunner()


@pytest.mark.parametrize("command", ["train", "embed", "demo"])
def test_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "--out" in result.output


def test_missing_input_fails_fast(tmp_path):
    result = runner.invoke(app, ["embed", str(tmp_path / "nope"), "--model", "m.pt", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_bad_option_value_is_named(tmp_path):
    result = runner.invoke(app, ["embed", str(tmp_path), "--model", "m.pt", "--out", "o", "--dtype", "int8"])
    assert result.exit_code == 2 and "dtype must be float16 or float32" in result.output


def test_segment_options_reach_the_config(tmp_path, monkeypatch):
    import raydist.cluster.session
    import raydist.pipeline.embed
    from raydist.config import SegmentConfig

    seen = {}

    def fake_embed(inputs, out, model, res, output, segments, retry_errors, storage_options):
        seen["segments"] = segments
        raise ValueError("stop here")

    monkeypatch.setattr(raydist.pipeline.embed, "embed", fake_embed)
    monkeypatch.setattr(raydist.cluster.session, "init_ray", lambda address=None, num_cpus=None: None)
    (tmp_path / "m.pt").write_bytes(b"")
    args = ["embed", str(tmp_path), "--model", str(tmp_path / "m.pt"), "--out", "o"]
    result = runner.invoke(app, [*args, "--merge-distance", "2.5", "--cepstral-weight", "0"])
    assert "stop here" in result.output
    assert seen["segments"] == SegmentConfig(merge_distance=2.5, cepstral_weight=0.0)
    bad = runner.invoke(app, [*args, "--cepstral-weight", "-1"])
    assert bad.exit_code == 2 and "cepstral_weight must be >= 0" in bad.output


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "raydist.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "embed" in out.stdout


def test_the_console_filter_passes_a_command_s_help_and_usage_errors(tmp_path):
    """The installed command routes its output through the console filter: a command's help and
    a usage error are typer's boxed panels, and they reach the user (they were once hidden as
    tracebacks, leaving "Usage: ..." with no options and no reason)."""
    env = {**os.environ, "RAYDIST_LOG_DIR": str(tmp_path)}

    def run(*a):
        return subprocess.run([sys.executable, "-m", "raydist.cli", *a], capture_output=True, text=True, env=env)

    shown = run("train", "--help")
    assert shown.returncode == 0 and "--workers" in shown.stdout and "--batch-size" in shown.stdout, shown.stdout
    bad = run("train", str(tmp_path))
    assert bad.returncode == 2 and "Missing option" in bad.stdout + bad.stderr, bad.stdout + bad.stderr


def test_train_options_reach_the_config(tmp_path, monkeypatch):
    """Every train option maps onto its TrainConfig field (caught: --placement was once dropped)."""
    import raydist.cluster.session
    import raydist.train.trainer as trainer

    seen = {}

    def fake_train(
        inputs,
        out,
        cfg,
        model_cfg,
        features,
        loss_cfg,
        resume,
        storage_options,
        vocoder_of=None,
        vocoder_overrides=None,
    ):
        seen.update(cfg=cfg, model=model_cfg, loss=loss_cfg, resume=resume, of=vocoder_of, over=vocoder_overrides)
        raise trainer.TrainError("stop here")

    monkeypatch.setattr(trainer, "train", fake_train)
    monkeypatch.setattr(raydist.cluster.session, "init_ray", lambda address=None, num_cpus=None: None)
    args = [
        "train",
        str(tmp_path),
        "--out",
        "o",
        "--workers",
        "3",
        "--epochs",
        "7",
        "--placement",
        "SPREAD",
        "--gpus-per-worker",
        "0.5",
        "--cpus-per-worker",
        "2",
        "--batch-size",
        "8",
        "--preset",
        "base",
        "--latent-dim",
        "16",
        "--contrast",
        "0.5",
        "--seed",
        "3",
        "--resume",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "stop here" in result.output  # a failure at run time: 1
    cfg = seen["cfg"]
    assert (cfg.workers, cfg.epochs, cfg.placement, cfg.gpus_per_worker, cfg.cpus_per_worker, cfg.batch_size) == (
        3,
        7,
        "SPREAD",
        0.5,
        2.0,
        8,
    )
    assert seen["resume"] is True and cfg.seed == 3
    # the preset's shape, with --latent-dim overriding one field; the objective's weight
    assert (seen["model"].preset, seen["model"].hidden, seen["model"].latent_dim) == ("base", 256, 16)
    assert seen["loss"].contrast == 0.5
    assert seen["of"] is None and seen["over"] is None
    bad = runner.invoke(app, ["train", str(tmp_path), "--out", "o", "--preset", "huge"])
    assert bad.exit_code == 2 and "unknown preset 'huge'" in bad.output

    # the vocoder stage: its own default epochs, the VAE to decode, the GAN weight
    from raydist.cli.commands import VOCODER_EPOCHS

    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"")
    voc = ["train", str(tmp_path), "--out", "o", "--stage", "vocoder", "--model", str(ckpt), "--adversarial", "0.1"]
    assert runner.invoke(app, voc).exit_code == 1  # the fake trainer's TrainError
    assert (seen["cfg"].epochs, seen["of"], seen["over"]) == (VOCODER_EPOCHS, str(ckpt), {"adversarial": 0.1})
    for args, message in (
        (["--stage", "vocoder"], "--stage vocoder needs --model"),
        (["--model", str(ckpt)], "--model is only for that stage"),
        (["--stage", "gan", "--model", str(ckpt)], "--stage must be vae or vocoder"),
    ):
        bad = runner.invoke(app, ["train", str(tmp_path), "--out", "o", *args])
        assert bad.exit_code == 2 and message in bad.output, bad.output


def _raydist(*args: str, tmp_path) -> subprocess.CompletedProcess:
    """The command as a user runs it: its own process, the quiet console, a log file."""
    env = {**os.environ, "RAYDIST_LOG_DIR": str(tmp_path / "logs")}
    return subprocess.run([sys.executable, "-m", "raydist.cli", *args], capture_output=True, text=True, env=env)


def test_failures_are_one_line_with_the_right_exit_code(tmp_path, checkpoint):
    import numpy as np
    import soundfile as sf
    from kit import free_port

    from raydist.cluster.session import init_ray  # noqa: F401  (the same imports as the commands)

    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(str(audio / "a.wav"), np.zeros(16000, np.float32), 16000)
    empty = tmp_path / "empty-store"
    empty.mkdir()
    cases = [  # (arguments, exit code, what the message says)
        (
            ["compress", str(audio), "--model", checkpoint, "--out", str(tmp_path / "c"), "--batch-size", "0"],
            2,
            "batch_size",
        ),
        (
            ["embed", str(tmp_path / "nope"), "--model", checkpoint, "--out", str(tmp_path / "e")],
            2,
            f"input {tmp_path / 'nope'} does not exist",
        ),
        (  # a missing path is named by the option it was given to
            ["embed", str(audio), "--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "e")],
            2,
            f"--model {tmp_path / 'no-model'} does not exist",
        ),
        (
            ["segment-eval", str(empty), "--truth", str(tmp_path / "no.csv"), "--out", "s"],
            2,
            f"--truth {tmp_path / 'no.csv'} does not exist",
        ),
        (
            ["decompress", str(empty), "--model", checkpoint, "--out", str(tmp_path / "d")],
            1,
            "holds no compressed clips",
        ),
        (["jobs", "status", "x", "--address", f"http://127.0.0.1:{free_port()}"], 1, "no Ray job server answers at"),
        (["jobs", "stop", "x", "--address", f"http://127.0.0.1:{free_port()}"], 1, "no Ray job server answers at"),
        (["jobs", "logs", "x", "--address", f"http://127.0.0.1:{free_port()}"], 1, "no Ray job server answers at"),
        (["evaluate-codec", str(audio), str(audio), "--compressed", str(empty)], 1, "holds no compressed clips"),
        (["runs", str(empty)], 2, "holds no raydist run"),
        # options checked before Ray starts
        (["decompress", str(empty), "--model", checkpoint, "--out", "d", "--format", "mp3"], 2, "--format must be"),
        (["train", str(audio), "--out", str(tmp_path / "t"), "--lr", "0"], 2, "lr, grad_clip"),
        (["generate", "--model", checkpoint, "--out", "g", "--n", "0"], 2, "--n must be >= 1"),
        (["demo", "--clips", "5"], 2, "--clips must be >= 20"),
        (["probe", str(empty), "--out", "p", "--folds", "1"], 2, "--folds must be >= 2"),
    ]
    for args, code, message in cases:
        out = _raydist(*args, tmp_path=tmp_path)
        text = out.stdout + out.stderr
        assert out.returncode == code, (args, text)
        assert message in text and "Traceback" not in text, (args, text)
        assert [ln for ln in text.splitlines() if ln.strip()][-1].startswith("error: "), (args, text)
        assert code == 1 or "raydist: running on" not in text, (args, text)  # bad usage: before Ray starts


def test_a_wait_that_times_out_says_the_job_goes_on(monkeypatch):
    from raydist.cluster import submit as sub

    monkeypatch.setattr(sub, "status", lambda address, job_id: "RUNNING")
    with pytest.raises(sub.SubmitError, match="still running after 0 s; it goes on: `raydist jobs status j1`") as e:
        sub.wait("http://127.0.0.1:1", "j1", timeout_s=0.2, poll_s=0.05)
    assert e.value.exit_code == 1  # a failure at run time, not bad usage


def test_the_summary_table_says_what_was_kept_skipped_and_written():
    from raydist.pipeline.summary import RunSummary

    s = RunSummary("o", inputs=7, ok=5, failed=2, already_done=3, audio_s=7200, wall_s=4.0)
    s.skipped_extensions, s.written_bytes = {".txt": 2}, {"frames": 2_500_000, "clips": 10_000}
    assert s.table().splitlines() == [
        "embedded 7 inputs into o in 4.0 s",
        "  ok           5",
        "  failed       2 (rows in errors/)",
        "  already done 3",
        "  audio        2.000 h, 1800 audio-s/s",
        "  not audio    2 .txt",
        "  written      clips 0.01 MB, frames 2.50 MB",
    ]


def test_the_console_shows_raydist_lines_and_hides_ray_s():
    from raydist.console import keep

    assert keep("(RayTrainWorker pid=12) raydist: epoch 1/20 step 15\n")[0] == "raydist: epoch 1/20 step 15\n"
    assert keep("(MapWorker pid=3) some library chatter\n")[0] is None
    assert keep("(MapWorker(MapBatches(EncodeBatch)) pid=3, ip=10.0.0.2) raydist: x\n")[0] == "raydist: x\n"
    assert keep("(raylet) [2026-11-26 07:01:09,123 W 1 2] worker_pool.cc:500: Some workers\n")[0] is None
    assert keep("\x1b[36m(gcs_server, ip=10.0.0.2)\x1b[0m chatter\n")[0] is None
    assert keep("(autoscaler +2s) Tip: use `ray status`\n")[0] is None
    # a progress bar of Ray Data's split coordinator: clearing, cursor-up, then a forwarded line
    assert keep("\x1b[A\x1b[36m(PlacementGroupCleaner pid=7)\x1b[0m Failed to query\n")[0] is None
    assert keep("                                                   \n")[0] is None
    assert keep("\x1b[A\n")[0] is None
    assert keep("\n")[0] is None
    assert keep("2026-11-26 06:26:19,729\tWARNING stats.py:1171 -- Error occurred\n")[0] is None
    assert keep("[2026-11-26 06:26:42,377 E 20243 20495] core_worker.cc:2465: Actor ...\n")[0] is None
    assert keep("/x/actor_pool_map_operator.py:551: UserWarning: The minimum number of concurrent actors\n")[0] is None
    shown, in_tb = keep("Traceback (most recent call last):\n")
    assert shown is None and in_tb
    assert keep('  File "x.py", line 1, in <module>\n', in_tb) == (None, True)
    assert keep("RuntimeError: Ray is not initialized.\n", True) == (None, False)  # the block's last line
    assert keep("raydist: embedded 600 inputs\n")[0] == "raydist: embedded 600 inputs\n"
    assert keep("  label  count\n")[0] == "  label  count\n"  # our own tables pass

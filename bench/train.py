"""Training throughput: `raydist train` (Ray Train, DDP) against a plain single-process loop doing
the same work, timed as whole commands.

    python -m bench train --clips 400 --epochs 5 20

Both sides train the default VAE on the same windows (the built-in corpus cut by raydist's own
`make_windows`), with the same step (`raydist.train.step`), optimiser, clipping and global batch
(workers x batch_size = 64). The plain loop is `raydist.train.local.train_local` in a fresh process
with all local torch threads, which is what a user would write instead; `raydist train` runs its
defaults (on a local Ray, one worker per node with all its CPUs, so one worker here; validation
each epoch, a checkpoint every 100 steps and at the end). Each side runs at two epoch counts, each
command --repeats times, alternating (the median counts): the slope between them is the
steady-state rate (windows/s), the intercept the fixed start-up. Prints one table of wall times,
rates and ratios, and where raydist's epochs spend their time (data iteration, training steps
with their allreduce, validation, checkpoints, reports: the per-epoch `time_*_s` figures of
metrics.json).

`--scaling EPOCHS` adds 1 against 2 workers on a local multi-node Ray (`scaling()`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench.report import ROOT, table

PLAIN = """
import sys, torch
from raydist.config import TrainConfig
from raydist.train.local import train_local
train_local([sys.argv[1]], sys.argv[2], TrainConfig(epochs=int(sys.argv[3])))
"""


def timed(cmd: list[str]) -> float:
    start = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.time() - start


def fmt(runs: list[float]) -> str:
    return " ".join(f"{r:.1f}" for r in runs) + " s"


def steps_of(model_dir: str) -> int:
    from raydist.model.checkpoint import read_checkpoint

    return read_checkpoint(os.path.join(model_dir, "model.pt"))[0]["step"]


PARTS = ("data", "step", "validate", "checkpoint", "report")


def where_time_goes(model_dir: str) -> dict[str, float]:
    """Rank 0's seconds per part of the epochs after the first (the first pays for the first pass
    over Ray Data), summed, from the run's metrics.json."""
    with open(os.path.join(model_dir, "metrics.json")) as f:
        history = json.load(f)["history"][2:]
    return {p: sum(e.get(f"time_{p}_s", 0.0) for e in history) for p in PARTS} | {"epochs": len(history)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=400)
    ap.add_argument("--epochs", type=int, nargs=2, default=[5, 20])
    ap.add_argument("--repeats", type=int, default=3, help="runs of each command; the median counts")
    ap.add_argument(
        "--scaling", type=int, default=0, metavar="EPOCHS", help="also time 1 vs 2 workers on a local 2-node Ray"
    )
    args = ap.parse_args(argv)
    if args.scaling:  # the multi-node cluster's job server wants the token; Ray reads this at import
        os.environ["RAY_AUTH_MODE"] = "token"
    from raydist.config import FeatureConfig, TrainConfig
    from raydist.demo.corpus import write_corpus
    from raydist.train.local import load_windows

    root = tempfile.mkdtemp(prefix="trainbench")
    manifest = write_corpus(os.path.join(root, "corpus"), n_clips=args.clips)
    windows = len(load_windows([manifest], TrainConfig(), FeatureConfig()))
    raydist_bin = os.path.join(os.path.dirname(sys.executable), "raydist")
    rows: dict = {"clips": args.clips, "training_windows_plain": windows}
    walls: dict = {}
    for _ in range(args.repeats):  # sides alternate, so a drift of the machine's speed hits both
        for side in ("plain", "raydist"):
            for epochs in args.epochs:
                out = os.path.join(root, f"{side}-{epochs}")
                shutil.rmtree(out, ignore_errors=True)
                if side == "plain":
                    wall = timed([sys.executable, "-c", PLAIN, manifest, out, str(epochs)])
                else:
                    wall = timed([raydist_bin, "train", manifest, "--out", out, "--epochs", str(epochs)])
                walls.setdefault(f"{side}/{epochs}", []).append(wall)
                runs = walls[f"{side}/{epochs}"]
                rows[f"{side}/{epochs}"] = {"wall_s": statistics.median(runs), "steps": steps_of(out), "runs_s": runs}
    with open(os.path.join(root, f"raydist-{args.epochs[0]}", "metrics.json")) as f:
        used = json.load(f)["config"]["train"]  # the workers raydist train chose for this machine
    batch = used["workers"] * used["batch_size"]
    rows["raydist_workers"], rows["raydist_cpus_per_worker"] = used["workers"], used["cpus_per_worker"]
    assert batch == TrainConfig().global_batch, "the plain loop's batch differs"
    lo, hi = args.epochs
    print(
        f"{args.clips} clips, {windows} training windows, global batch {batch} "
        f"(raydist: {used['workers']} worker(s) x {used['cpus_per_worker']:g} CPUs)"
    )
    print(f"{'side':8s} {f'{lo} epochs':>12s} {f'{hi} epochs':>12s} {'steady win/s':>13s} {'start-up s':>11s}")
    for side in ("plain", "raydist"):
        a, b = rows[f"{side}/{lo}"], rows[f"{side}/{hi}"]
        rate = (b["steps"] - a["steps"]) * batch / (b["wall_s"] - a["wall_s"])
        startup = a["wall_s"] - a["steps"] * batch / rate
        rows[side] = {"steady_windows_per_s": rate, "startup_s": startup}
        print(f"{side:8s} {a['wall_s']:11.1f}s {b['wall_s']:11.1f}s {rate:13.0f} {startup:11.1f}")
        print(f"{'':8s} runs: {lo} epochs {fmt(a['runs_s'])}; {hi} epochs {fmt(b['runs_s'])}")
    for epochs in args.epochs:
        ratio = rows[f"plain/{epochs}"]["wall_s"] / rows[f"raydist/{epochs}"]["wall_s"]
        rows[f"ratio/{epochs}"] = ratio
        print(f"raydist train / plain loop, whole command at {epochs} epochs: {ratio:.2f}x the speed")
    rows["ratio/steady"] = rows["raydist"]["steady_windows_per_s"] / rows["plain"]["steady_windows_per_s"]
    print(f"steady state: {rows['ratio/steady']:.2f}x")
    parts = where_time_goes(os.path.join(root, f"raydist-{hi}"))
    rows["raydist_epoch_parts_s"] = parts
    total = sum(parts[p] for p in PARTS)
    print(
        f"raydist train, where an epoch's time goes (rank 0, epochs 2-{hi}, {total / parts['epochs']:.2f} s per epoch): "
        + ", ".join(f"{p} {100 * parts[p] / total:.1f}%" for p in PARTS)
    )
    if args.scaling:
        rows["scaling"] = scaling(raydist_bin, manifest, root, args.scaling)
    rows["epochs"] = args.epochs
    rows["global_batch"] = batch
    print(render(rows))
    return rows


def scaling(raydist_bin: str, manifest: str, root: str, epochs: int) -> dict:
    """1 worker against 2 workers on 2 nodes of a local multi-node Ray (a head with no CPUs and
    two nodes of 1 CPU each, as the cluster tests start), 32 windows per worker per step (weak
    scaling). The rate is training windows per second of rank 0's data + step time (allreduce
    included) over the epochs after the first; efficiency = rate(2) / (2 x rate(1))."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from kit import local_cluster

    rates, per_worker = {}, 32
    with local_cluster(worker_nodes=2) as cluster:
        for workers in (1, 2):
            out = os.path.join(root, f"scaling-{workers}")
            cmd = [raydist_bin, "train", manifest, "--out", out, "--epochs", str(epochs), "--address", cluster["gcs"]]
            cmd += ["--workers", str(workers), "--cpus-per-worker", "1"]
            cmd += ["--batch-size", str(per_worker), "--placement", "SPREAD"]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(os.path.join(out, "metrics.json")) as f:
                history = json.load(f)["history"]
            later = history[2:]
            steps = history[-1]["step"] - history[1]["step"]
            seconds = sum(e["time_data_s"] + e["time_step_s"] for e in later)
            rates[workers] = steps * workers * per_worker / seconds
            nodes = history[-1]["nodes"]
            print(f"scaling: {workers} worker(s) on {nodes} node(s): {rates[workers]:.0f} windows/s")
    eff = rates[2] / (2 * rates[1])
    print(f"scaling efficiency, 2 workers on 2 nodes against 1: {eff:.2f}")
    return {"windows_per_s": rates, "efficiency": eff}


def render(result: dict) -> str:
    lo, hi = result["epochs"]
    rows = []
    for side, label in (("plain", "plain loop (`train_local`, one process)"), ("raydist", "`raydist train`")):
        a, b = result[f"{side}/{lo}"], result[f"{side}/{hi}"]
        rows.append(
            [
                label,
                f"{a['wall_s']:.1f} s",
                f"{b['wall_s']:.1f} s",
                f"{result[side]['steady_windows_per_s']:.0f}",
                f"{result[side]['startup_s']:.1f} s",
            ]
        )
    head = (
        f"{result['clips']} clips of the built-in corpus, {result['training_windows_plain']} training windows, global "
        f"batch {result['global_batch']} (raydist: {result['raydist_workers']} worker(s) × "
        f"{result['raydist_cpus_per_worker']:g} CPUs); whole commands, medians of their runs."
    )
    t = table(["side", f"{lo} epochs", f"{hi} epochs", "steady windows/s", "start-up"], rows)
    parts = result["raydist_epoch_parts_s"]
    total = sum(parts[p] for p in PARTS)
    where = ", ".join(f"{p} {100 * parts[p] / total:.1f}%" for p in PARTS)
    out = (
        f"{head}\n\n{t}\n\nraydist / plain: {result[f'ratio/{hi}']:.2f}x at {hi} epochs, "
        f"{result['ratio/steady']:.2f}x steady. Where an epoch of `raydist train` goes (rank 0): {where}."
    )
    if "scaling" in result:
        out += f"\n\nScaling, 2 workers on 2 nodes against 1: efficiency {result['scaling']['efficiency']:.2f}."
    return out

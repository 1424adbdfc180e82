"""`raydist embed` against the peers a user would write instead, doing the same work, timed as whole
commands (a cold process each, Ray's start included), on two corpus sizes.

    python -m bench peers --clips 1000 4000 --repeats 3
    (the datasets peer needs `pip install -e '.[bench]'`)

Sides (bench/peer_sides.py holds the two peers; all three run raydist's own decode_batch, EncodeBatch
and split_tables and write the same four tables as Parquet, on every core of this machine):
- `raydist embed DIR --model M --out O`, as a user runs it;
- a multiprocessing.Pool script, one Parquet file per table per batch;
- Hugging Face `datasets.map(batched, num_proc)`, the same files, and map's summary to_parquet.

Each command runs `--repeats` times per size, alternating sides; the median wall time per size
gives the end-to-end rate; the two sizes split it into a fixed start-up (the intercept) and a
steady-state rate (the slope). Prints one table and the ratios the targets are set on.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench.corpora.tones import make_corpus, make_model
from bench.report import ROOT, table


def command(side: str, corpus: str, model: str, out: str, address: str | None) -> list[str]:
    if side.startswith("raydist"):
        cmd = [
            os.path.join(os.path.dirname(sys.executable), "raydist"),
            "embed",
            corpus,
            "--model",
            model,
            "--out",
            out,
        ]
        return cmd + (["--address", address] if side == "raydist-attached" else [])
    return [sys.executable, "-m", "bench.peer_sides", side, corpus, model, out]


def timed(cmd: list[str]) -> float:
    start = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.time() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return wall


def rows_written(out: str) -> dict[str, int]:
    import pyarrow.dataset as ds

    return {t: ds.dataset(os.path.join(out, t), format="parquet").count_rows() for t in ("clips", "frames", "segments")}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench peers", description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, nargs=2, default=[1000, 4000])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--sides",
        nargs="+",
        default=["raydist", "mp", "datasets"],
        help="raydist, mp, datasets; raydist-attached: raydist embed --address of a local Ray started "
        "once beforehand (ray start --head with every core), which takes Ray's start and stop out",
    )
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="bench-peers-")
    model = make_model(os.path.join(tmp, "model"))
    small, large = args.clips
    corpora = {}
    for n in (small, large):
        corpora[n] = os.path.join(tmp, f"corpus{n}")
        make_corpus(corpora[n], n, args.seconds, 16000)
    walls: dict[str, dict[int, list[float]]] = {s: {small: [], large: []} for s in args.sides}
    rows: dict[int, dict[str, dict[str, int]]] = {small: {}, large: {}}  # size -> side -> rows per table
    with contextlib.ExitStack() as stack:
        address = None
        if "raydist-attached" in args.sides:
            sys.path.insert(0, os.path.join(ROOT, "tests"))
            from kit import local_cluster

            address = stack.enter_context(local_cluster(worker_nodes=0, head_cpus=os.cpu_count() or 2))["gcs"]
        run_all(args, walls, rows, corpora, model, tmp, address)
    shutil.rmtree(tmp)
    result = summarise(args, walls, rows)
    print(render(result))
    return result


def run_all(args, walls, rows, corpora, model, tmp, address) -> None:
    small, large = args.clips
    for rep in range(args.repeats):
        for n in (small, large):
            for side in args.sides:
                out = os.path.join(tmp, f"out-{side}-{n}-{rep}")
                walls[side][n].append(timed(command(side, corpora[n], model, out, address)))
                if rep == 0:  # the same work: the same rows in the same tables on every side
                    rows[n][side] = rows_written(out)
                    assert rows[n][side]["clips"] == n and rows[n][side] == rows[n][args.sides[0]], rows[n]
                shutil.rmtree(out)


def summarise(args, walls, rows) -> dict:
    small, large = args.clips
    audio = {n: n * args.seconds for n in (small, large)}
    report = {"clips": args.clips, "seconds_per_clip": args.seconds, "repeats": args.repeats, "sides": {}}
    for side in args.sides:
        med = {n: statistics.median(walls[side][n]) for n in (small, large)}
        steady = (audio[large] - audio[small]) / (med[large] - med[small])
        report["sides"][side] = {
            "walls_s": {str(n): walls[side][n] for n in (small, large)},
            "median_s": {str(n): med[n] for n in (small, large)},
            "rows": {str(n): rows[n][side] for n in (small, large)},
            "end_to_end_audio_s_per_s": audio[large] / med[large],
            "steady_audio_s_per_s": steady,
            "startup_s": med[small] - audio[small] / steady,
        }
    return report


NAMES = {
    "raydist": "`raydist embed`",
    "raydist-attached": "`raydist embed --address` (Ray already running)",
    "mp": "multiprocessing peer",
    "datasets": "`datasets.map` peer",
}


def render(result: dict) -> str:
    small, large = result["clips"]
    sides = result["sides"]
    rows = [
        [
            NAMES.get(side, side),
            f"{r['median_s'][str(small)]:.1f} s",
            f"{r['median_s'][str(large)]:.1f} s",
            f"{r['end_to_end_audio_s_per_s']:.0f}",
            f"{r['steady_audio_s_per_s']:.0f}",
            f"{r['startup_s']:.1f} s",
        ]
        for side, r in sides.items()
    ]
    head = (
        f"{small} and {large} clips × {result['seconds_per_clip']:g} s at 16 kHz, an untrained default-size VAE, "
        f"medians of {result['repeats']} runs; every side wrote the same rows to the same four tables."
    )
    out = f"{head}\n\n" + table(
        ["side", f"{small} clips", f"{large} clips", "audio-s/s end to end", "steady", "start-up"], rows
    )
    ratios = []
    for ours in [s for s in ("raydist", "raydist-attached") if s in sides]:
        for peer in [s for s in ("mp", "datasets") if s in sides]:
            end = sides[ours]["end_to_end_audio_s_per_s"] / sides[peer]["end_to_end_audio_s_per_s"]
            steady = sides[ours]["steady_audio_s_per_s"] / sides[peer]["steady_audio_s_per_s"]
            ratios.append(f"{NAMES[ours]} / {NAMES[peer]}: {end:.2f}x end to end, {steady:.2f}x steady")
    return out + ("\n\n" + "; ".join(ratios) + "." if ratios else "")

"""`raydist embed` against the peers a user would write instead, doing the same work, timed as whole
commands (a cold process each, Ray's start included), on two corpus sizes.

    .venv/bin/python bench/bench_peers.py --clips 1000 4000 --repeats 3
    (the datasets peer needs `pip install -e '.[bench]'`)

Sides (bench/peers.py holds the two peers; all three run raydist's own decode_batch, EncodeBatch
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
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_embed import make_corpus, make_model  # noqa: E402


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
    return [sys.executable, os.path.join(HERE, "peers.py"), side, corpus, model, out]


def timed(cmd: list[str]) -> float:
    start = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return wall


def rows_written(out: str) -> dict[str, int]:
    import pyarrow.dataset as ds

    return {t: ds.dataset(os.path.join(out, t), format="parquet").count_rows() for t in ("clips", "frames", "segments")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    ap.add_argument("--json", default="bench-peers.json")
    args = ap.parse_args()
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
            sys.path.insert(0, os.path.join(HERE, "..", "tests"))
            from kit import local_cluster

            address = stack.enter_context(local_cluster(worker_nodes=0, head_cpus=os.cpu_count() or 2))["gcs"]
        run_all(args, walls, rows, corpora, model, tmp, address)
    report_and_save(args, walls, rows)
    shutil.rmtree(tmp)


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


def report_and_save(args, walls, rows) -> None:
    small, large = args.clips
    audio = {n: n * args.seconds for n in (small, large)}
    report = {"clips": args.clips, "seconds_per_clip": args.seconds, "cores": os.cpu_count(), "sides": {}}
    print(
        f"{small} and {large} clips x {args.seconds:.0f} s at 16 kHz, {os.cpu_count()} cores, median of {args.repeats}"
    )
    print(
        f"{'side':17s} {f'{small} clips':>12s} {f'{large} clips':>12s} {'audio-s/s':>10s} {'steady a-s/s':>13s} {'start-up':>9s}"
    )
    for side in args.sides:
        med = {n: statistics.median(walls[side][n]) for n in (small, large)}
        steady = (audio[large] - audio[small]) / (med[large] - med[small])
        startup = med[small] - audio[small] / steady
        report["sides"][side] = {
            "walls_s": {n: walls[side][n] for n in (small, large)},
            "rows": {n: rows[n][side] for n in (small, large)},
            "end_to_end_audio_s_per_s": audio[large] / med[large],
            "steady_audio_s_per_s": steady,
            "startup_s": startup,
        }
        print(
            f"{side:17s} {med[small]:11.1f}s {med[large]:11.1f}s {audio[large] / med[large]:10.0f} "
            f"{steady:13.0f} {startup:8.1f}s"
        )
    r = report["sides"]
    for ours in [s for s in ("raydist", "raydist-attached") if s in r]:
        for peer in [s for s in ("mp", "datasets") if s in r]:
            end = r[ours]["end_to_end_audio_s_per_s"] / r[peer]["end_to_end_audio_s_per_s"]
            steady = r[ours]["steady_audio_s_per_s"] / r[peer]["steady_audio_s_per_s"]
            report[f"ratio_{ours}_vs_{peer}"] = {"end_to_end": end, "steady": steady}
            print(f"{ours} / {peer}: whole command at {large} clips {end:.2f}x, steady state {steady:.2f}x")
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

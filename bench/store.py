"""What incremental commits cost, and what many commits cost readers.

    python -m bench store --clips 4000 --seconds 5 --reps 3

1. Commit overhead: `embed` of the same corpus (same model, same output columns) in one Ray
   session, once with a commit every 2 s (many commits: the increment's parts gathered into one
   folder per table, a log entry, the folders moved into place) and once with one commit at the end (--commit-seconds
   1e9, the behaviour before incremental commits), alternating, `--reps` times each. Prints
   audio-s/s of both, the commits made, and their ratio (target: >= 0.95).
2. Readers: an output of 1,000 commits (10 clips each, the clips schema's columns id + embedding)
   built through `RunStore.commit`; times `read_table`, a pyarrow read of the `clips/` folder and
   `done_ids` (what every run start does), against the same rows in one file.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.corpora.tones import make_corpus, make_model
from bench.report import mean_std, table


def commit_overhead(clips: int, seconds: float, reps: int) -> dict:
    from raydist.cluster.session import init_ray
    from raydist.config import OutputConfig, ResourceConfig
    from raydist.io.store import RunStore
    from raydist.pipeline.embed import embed

    tmp = tempfile.mkdtemp(prefix="bench-store-")
    make_corpus(os.path.join(tmp, "corpus"), clips, seconds, 16000)
    model = make_model(os.path.join(tmp, "model"))
    init_ray(num_cpus=os.cpu_count())
    embed([os.path.join(tmp, "corpus")], os.path.join(tmp, "warm"), model, progress=False)  # warm caches
    speeds: dict[str, list[float]] = {"every 2 s": [], "one at the end": []}
    commits: dict[str, list[int]] = {k: [] for k in speeds}
    for r in range(reps):
        for label, every in (("every 2 s", 2.0), ("one at the end", 1e9)):
            out = os.path.join(tmp, f"out-{r}-{every}")
            s = embed(
                [os.path.join(tmp, "corpus")],
                out,
                model,
                ResourceConfig(),
                OutputConfig(commit_seconds=every),
                progress=False,
            )
            speeds[label].append(s.speed)
            commits[label].append(len(RunStore(out).log()))
    ratios = [a / b for a, b in zip(speeds["every 2 s"], speeds["one at the end"])]
    return {"clips": clips, "seconds_per_clip": seconds, "speeds": speeds, "commits": commits, "ratios": ratios}


def readers(commits: int, rows: int) -> dict:
    from raydist.io.store import RunStore, Taken, read_table

    out = tempfile.mkdtemp(prefix="bench-store-read-")
    store = RunStore(out)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for c in range(commits):
        ids = [f"c{c:05d}-{i}" for i in range(rows)]
        t = pa.table({"id": ids, "embedding": [rng.standard_normal(64).astype(np.float32) for _ in ids]})
        name = f"part-run-c{c:05d}.parquet"
        store.fs.makedirs(store.path("_staging", "run", "clips"), exist_ok=True)
        pq.write_table(t, store.path("_staging", "run", "clips", name))
        info = {"counts": {"inputs": rows, "ok": rows, "failed": 0}}
        store.commit("run", c, {"clips": [name]}, ids, Taken(store._head), ("clips", "errors"), info)
    build = time.perf_counter() - start

    def timed(fn, n: int = 3) -> float:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    one = os.path.join(out, "one.parquet")
    pq.write_table(read_table(out, "clips"), one)
    return {
        "commits": commits,
        "rows_per_commit": rows,
        "commit_ms": build / commits * 1000,
        "read_table_s": timed(lambda: read_table(out, "clips")),
        "pyarrow_folder_s": timed(lambda: pq.read_table(os.path.join(out, "clips"))),
        "one_file_s": timed(lambda: pq.read_table(one)),
        "done_ids_s": timed(lambda: RunStore(out).done_ids()),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        prog="python -m bench store", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--clips", type=int, default=4000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--commits", type=int, default=1000)
    ap.add_argument("--skip-embed", action="store_true")
    a = ap.parse_args(argv)
    result = {"readers": readers(a.commits, 10)}
    if not a.skip_embed:
        result["commit_overhead"] = commit_overhead(a.clips, a.seconds, a.reps)
    print(render(result))
    return result


def render(result: dict) -> str:
    r = result["readers"]
    out = table(
        ["reading an output of " + f"{r['commits']:,} commits ({r['rows_per_commit']} clips each)", "seconds"],
        [
            ["`read_table(out, 'clips')` (through the commit log)", f"{r['read_table_s']:.2f}"],
            ["pyarrow over the `clips/` folder", f"{r['pyarrow_folder_s']:.2f}"],
            ["the same rows in one file", f"{r['one_file_s']:.3f}"],
            ["`done_ids` (what every run's start reads)", f"{r['done_ids_s']:.2f}"],
        ],
    )
    out += f"\n\nBuilding it through `RunStore.commit`: {r['commit_ms']:.1f} ms per commit."
    if "commit_overhead" in result:
        c = result["commit_overhead"]
        rows = [
            [label, mean_std(v, 0), f"{statistics.mean(c['commits'][label]):.1f}"] for label, v in c["speeds"].items()
        ]
        out += (
            f"\n\n`embed` of {c['clips']:,} × {c['seconds_per_clip']:g} s clips in one Ray session, alternating, "
            f"{len(c['ratios'])} runs each (audio-s/s, mean ± std):\n\n"
            + table(["commits", "audio-s/s", "commits made"], rows)
            + f"\n\nRatio, incremental / one commit: {mean_std(c['ratios'], 2)}."
        )
    return out

"""What incremental commits cost, and what many commits cost readers.

    .venv/bin/python bench/bench_store.py --clips 4000 --seconds 5 --reps 3

1. Commit overhead: `embed` of the same corpus (same model, same output columns) in one Ray
   session, once with a commit every 2 s (many commits: a merge of the increment's parts into one
   file per table, a log entry, moves) and once with one commit at the end (--commit-seconds
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
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(__file__))


def commit_overhead(clips: int, seconds: float, reps: int) -> None:
    from bench_embed import make_corpus, make_model

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
    for label, v in speeds.items():
        print(
            f"embed, commits {label:<15}: {statistics.mean(v):7.0f} ± {statistics.pstdev(v):4.0f} audio-s/s "
            f"({statistics.mean(commits[label]):.1f} commits; {reps} runs)"
        )
    ratios = [a / b for a, b in zip(speeds["every 2 s"], speeds["one at the end"])]
    print(f"ratio (incremental / one commit): {statistics.mean(ratios):.3f} ± {statistics.pstdev(ratios):.3f}")


def readers(commits: int, rows: int) -> None:
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
    print(f"built {commits} commits of {rows} clips in {build:.1f} s ({build / commits * 1000:.1f} ms per commit)")

    def timed(fn, n: int = 3) -> float:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    one = os.path.join(out, "one.parquet")
    pq.write_table(read_table(out, "clips"), one)
    print(f"read_table(clips), {commits} commits: {timed(lambda: read_table(out, 'clips')):.2f} s")
    print(f"pyarrow read of clips/ ({commits} files): {timed(lambda: pq.read_table(os.path.join(out, 'clips'))):.2f} s")
    print(f"the same rows in one file: {timed(lambda: pq.read_table(one)):.3f} s")
    print(f"done_ids (every run's start): {timed(lambda: RunStore(out).done_ids()):.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=4000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--commits", type=int, default=1000)
    ap.add_argument("--skip-embed", action="store_true")
    a = ap.parse_args()
    readers(a.commits, 10)
    if not a.skip_embed:
        commit_overhead(a.clips, a.seconds, a.reps)


if __name__ == "__main__":
    main()

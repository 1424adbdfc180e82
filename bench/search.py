"""Search by sound: retrieval quality on held-out voices and programs, near-duplicates found after
re-encoding, and the index at 10^5 and 10^6 vectors.

    apt-get install espeak-ng fluidsynth fluid-soundfont-gm ffmpeg
    python -m bench search --seeds 0 1 2
    python -m bench search --root /tmp/feat-held     # reuse a `features` run's checkpoints

1. Retrieval (the `features` benchmark's HELD split: 300 spoken words, 240 instrument phrases,
   voices and programs never trained on or tuned on). Per seed, a VAE trained by `raydist train`
   exactly as in `features` (every default but `--epochs 90`; reused from `--root` when there),
   the split embedded by `raydist embed`, indexed by `raydist index`. Every clip queries the index
   by its id; among the other clips of its kind (speech or instrument) in the ranking, precision@10
   and average precision of neighbours with its word, its speaker, its instrument family. MFCC and
   log-mel mean/std of the same clips go through the same index code (standardised, cosine).
2. Near-duplicates: every 5th held clip re-encoded four ways (Opus 12 kbps through ffmpeg, gain
   -6 dB and +6 dB, delayed 0.3 s), each queried as audio (`raydist search --audio`'s path): is its
   original (or a byte-identical twin of it) the first neighbour, and at what distance. The
   `raydist dedupe` default threshold is chosen here: the one that best separates those distances
   from the distance of each held clip to its nearest other clip.
3. Scale: 10^5 and 10^6 vectors made from the held clip embeddings (each a random convex
   combination of two real embeddings plus Gaussian noise of 5% of each dimension's spread, so
   that neighbours are not exact copies), indexed with the shipped IVF-PQ settings. Build time
   and peak RSS (a fresh process per size), recall@10 against exact search (100 queries), and
   query latency p50/p99 for k = 10 (200 queries) and k = 10,000 (20 queries), on this machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import soundfile as sf

from bench.corpora.labelled import build
from bench.report import ROOT, mean_std, table
from raydist.config import FeatureConfig, LossConfig

TASKS = {"word": ("speech", "word"), "speaker": ("speech", "voice"), "family": ("instrument", "family")}
VARIANTS = ("opus12", "gain-6", "gain+6", "shift0.3")


def trained(root: str, manifest: str, seed: int, epochs: int) -> tuple[str, str]:
    """(checkpoint, embedding output) of seed: the `features` benchmark's command, or its result."""
    ckpt, emb = os.path.join(root, f"ckpt{seed}"), os.path.join(root, f"emb{seed}")
    raydist = os.path.join(os.path.dirname(sys.executable), "raydist")
    if not os.path.exists(os.path.join(ckpt, "metrics.json")):
        cmd = [raydist, "train", manifest, "--out", ckpt, "--epochs", str(epochs), "--seed", str(seed)]
        subprocess.run(cmd + ["--contrast", str(LossConfig.contrast)], check=True, capture_output=True)
    if not os.path.isdir(os.path.join(emb, "_log")):
        subprocess.run([raydist, "embed", manifest, "--model", ckpt, "--out", emb], check=True, capture_output=True)
    return ckpt, emb


def vector_index(path: str, ids: list[str], x: np.ndarray, name: str, standardise: bool = True):
    """An index of raw vectors `x` (baselines), made by the same code as `raydist index`;
    standardise=False: plain cosine over the raw vectors (an ablation)."""
    from raydist.search.index import add_rows, connect, new_meta, update_ann, write_meta
    from raydist.search.query import Index

    meta = new_meta(name, "clips", {"uri": None, "sha256": None, "vae_sha256": name}, x)
    if not standardise:
        meta.mean, meta.std = [0.0] * meta.dim, [1.0] * meta.dim
    db = connect(path)
    add_rows(db, meta, pa.table({"id": ids}), x, 0)
    update_ann(db, meta)
    write_meta(path, meta)
    return Index(path)


def retrieval(index, rows: list[dict]) -> dict[str, dict[str, float]]:
    """P@10 and mAP per task, every clip querying by its own id; the ranking keeps the query's kind."""
    by_id = {r["id"]: r for r in rows}
    ids = [r["id"] for r in rows]
    rankings = index.nearest(index.vectors_of(ids), k=len(ids))
    out = {}
    for task, (kind, field) in TASKS.items():
        p10, ap = [], []
        for query, hits in zip(ids, rankings):
            q = by_id[query]
            if q["kind"] != kind:
                continue
            ranked = [by_id[h] for h in hits.column("id").to_pylist() if h != query and by_id[h]["kind"] == kind]
            rel = np.array([r[field] == q[field] for r in ranked], float)
            p10.append(rel[:10].mean())
            hits_at = np.cumsum(rel)
            ap.append(float((hits_at / np.arange(1, len(rel) + 1))[rel > 0].mean()) if rel.any() else 0.0)
        out[task] = {"p10": float(np.mean(p10)), "map": float(np.mean(ap))}
    return out


def variants(rows: list[dict], root: str, tmp: str) -> list[tuple[str, str, str]]:
    """(original id, variant, path) for each scored clip and each re-encoding."""
    out = []
    for r in rows:
        x, sr = sf.read(os.path.join(root, r["uri"]), dtype="float32")
        base = os.path.join(tmp, r["id"].replace("/", "_"))
        sf.write(base + ".wav", x, sr)
        opus = base + ".opus"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", base + ".wav", "-c:a", "libopus", "-b:a", "12k", opus], check=True
        )
        for name, y in (
            ("gain-6", x * 10 ** (-6 / 20)),
            ("gain+6", np.clip(x * 10 ** (6 / 20), -1, 1)),
            ("shift0.3", np.concatenate([np.zeros(int(0.3 * sr), np.float32), x])),
        ):
            sf.write(f"{base}.{name}.wav", y, sr)
            out.append((r["id"], name, f"{base}.{name}.wav"))
        out.append((r["id"], "opus12", opus))
    return out


def near_duplicates(idx: str, ckpt: str, rows: list[dict], root: str, tmp: str) -> dict:
    import hashlib

    from raydist.search.query import Index, embed_audio

    index = Index(idx)
    digest = {}
    for r in csv.DictReader(open(os.path.join(root, "manifest.csv"))):
        with open(os.path.join(root, r["uri"]), "rb") as f:
            digest[r["id"]] = hashlib.sha256(f.read()).hexdigest()
    todo = variants(rows, root, tmp)
    raw = embed_audio([p for _, _, p in todo], index.meta, ckpt)
    hits = index.nearest(index.meta.standardise(raw), k=1)
    found = {v: [] for v in VARIANTS}
    dist = []
    for (orig, name, _), h in zip(todo, hits):
        found[name].append(digest[h.column("id")[0].as_py()] == digest[orig])
        dist.append(h.column("distance")[0].as_py())
    # nearest *other* clip of each original: what a threshold must stay under
    ids = [r["id"] for r in rows]
    others = [h.column("distance")[1].as_py() for h in index.nearest(index.vectors_of(ids), k=2)]
    twins = sum(list(digest.values()).count(digest[i]) > 1 for i in ids)
    return {
        "rank1": {v: float(np.mean(f)) for v, f in found.items()},
        "distances": dist,
        "nearest_other": others,
        "twins": twins,
    }


SCALE_CODE = """
import json, resource, sys, time
import numpy as np
from bench.search import scale_one
print(json.dumps(scale_one(sys.argv[1], int(sys.argv[2]), sys.argv[3])))
"""


def scale_one(path: str, n: int, base_file: str) -> dict:
    """Build an index of n vectors made from the real embeddings in base_file (.npy) and time it."""
    import resource

    from raydist.search.index import add_rows, connect, new_meta, update_ann, write_meta
    from raydist.search.query import Index

    base = np.load(base_file)
    rng = np.random.default_rng(0)
    a, b, w = rng.integers(len(base), size=n), rng.integers(len(base), size=n), rng.random((n, 1), np.float32)
    x = w * base[a] + (1 - w) * base[b]
    x += 0.05 * base.std(axis=0) * rng.standard_normal(x.shape, np.float32)
    ids = [f"v{i:07d}" for i in range(n)]
    start = time.perf_counter()
    meta = new_meta("scale", "clips", {"uri": None, "sha256": None, "vae_sha256": "scale"}, x)
    db = connect(path)
    add_rows(db, meta, pa.table({"id": ids}), x, 0)
    write_time = time.perf_counter() - start
    update_ann(db, meta)
    write_meta(path, meta)
    build_s = time.perf_counter() - start
    index = Index(path)
    q = meta.standardise(
        x[rng.integers(n, size=200)] + 0.05 * base.std(axis=0) * rng.standard_normal((200, x.shape[1]), np.float32)
    )
    recall = []
    for v in q[:100]:
        exact = index.table.search(v.tolist()).distance_type("cosine").bypass_vector_index().limit(10).to_arrow()
        ann = index.nearest(v[None], 10)[0]
        recall.append(len(set(exact.column("id").to_pylist()) & set(ann.column("id").to_pylist())) / 10)
    lat = {}
    for k, m in ((10, 200), (10_000, 20)):
        times = []
        for v in q[:m]:
            t = time.perf_counter()
            index.nearest(v[None], k)
            times.append(time.perf_counter() - t)
        lat[str(k)] = {
            "p50_ms": 1000 * float(np.percentile(times, 50)),
            "p99_ms": 1000 * float(np.percentile(times, 99)),
        }
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "n": n,
        "write_s": write_time,
        "build_s": build_s,
        "peak_rss_mb": rss,
        "recall10": float(np.mean(recall)),
        "latency": lat,
        "ann": meta.ann,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench search", description=__doc__.split("\\n\\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=90, help="training epochs (as in `features`)")
    ap.add_argument("--root", help="work folder; a `features --root` folder reuses its checkpoints")
    ap.add_argument("--scale", type=int, nargs="*", default=[100_000, 1_000_000], help="index sizes to time")
    ap.add_argument("--every", type=int, default=5, help="re-encode every N-th held clip")
    args = ap.parse_args(argv)
    from raydist.eval.probe import baseline_features
    from raydist.io.store import read_table
    from raydist.search.index import build_index
    from raydist.search.query import Index

    root = args.root or tempfile.mkdtemp(prefix="feat")
    manifest = os.path.join(root, "manifest.csv")
    if not os.path.exists(manifest):
        build(root, "held")
    rows = list(csv.DictReader(open(manifest)))
    uris = [os.path.join(root, r["uri"]) for r in rows]
    ids = [r["id"] for r in rows]
    tmp = tempfile.mkdtemp(prefix="bench-search-")
    result: dict = {"clips": len(rows), "epochs": args.epochs, "baselines": {}, "seeds": []}
    for name in ("mfcc", "logmel"):
        x = baseline_features(uris, name, FeatureConfig())
        result["baselines"][name] = retrieval(vector_index(os.path.join(tmp, name), ids, x, name), rows)
        print(f"{name}: {json.dumps(result['baselines'][name])}", flush=True)
    for seed in args.seeds:
        ckpt, emb = trained(root, manifest, seed, args.epochs)
        idx = os.path.join(tmp, f"idx{seed}")
        build_index(emb, idx)
        run = {"seed": seed, "retrieval": retrieval(Index(idx), rows)}
        clips = read_table(emb, "clips", columns=["id", "embedding"]).to_pydict()
        by_id = dict(zip(clips["id"], clips["embedding"]))
        raw = np.array([by_id[i] for i in ids], np.float32)
        run["retrieval_raw_cosine"] = retrieval(
            vector_index(os.path.join(tmp, f"raw{seed}"), ids, raw, "raw", False), rows
        )
        if seed == args.seeds[0]:
            os.makedirs(os.path.join(tmp, "dup"), exist_ok=True)
            run["duplicates"] = near_duplicates(idx, ckpt, rows[:: args.every], root, os.path.join(tmp, "dup"))
            np.save(os.path.join(tmp, "base.npy"), raw)
        result["seeds"].append(run)
        print(f"seed {seed}: {json.dumps(run['retrieval'])}", flush=True)
    result["scale"] = []
    for n in args.scale:
        out = subprocess.run(
            [sys.executable, "-c", SCALE_CODE, os.path.join(tmp, f"scale{n}"), str(n), os.path.join(tmp, "base.npy")],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        if out.returncode:
            raise SystemExit(f"scale {n} failed:\\n{out.stderr[-3000:]}")
        result["scale"].append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"scale {n}: {json.dumps(result['scale'][-1])}", flush=True)
    print(render(result))
    return result


def threshold(result: dict) -> tuple[float, float, float]:
    """(the `raydist dedupe` default: the threshold, on a 0.01 grid, that best separates the
    re-encoded copies (distance to their original) from distinct clips (distance from a held clip
    to its nearest other clip), i.e. the largest share of copies within it minus share of distinct
    clips within it; those two shares)."""
    dup = result["seeds"][0]["duplicates"]
    d, other = np.array(dup["distances"]), np.array(dup["nearest_other"])
    grid = np.round(np.arange(0.01, 0.5, 0.01), 2)
    best = max(grid, key=lambda t: (np.mean(d <= t) - np.mean(other <= t), -t))
    return float(best), float(np.mean(d <= best)), float(np.mean(other <= best))


def render(result: dict) -> str:
    seeds = result["seeds"]
    rows = []
    for task in TASKS:
        ours = [s["retrieval"][task] for s in seeds]
        raw = [s["retrieval_raw_cosine"][task] for s in seeds]
        rows.append(
            [task, mean_std([r["p10"] for r in ours]), mean_std([r["map"] for r in ours])]
            + [f"{np.mean([r['p10'] for r in raw]):.3f} / {np.mean([r['map'] for r in raw]):.3f}"]
            + [
                f"{result['baselines'][b][task]['p10']:.3f} / {result['baselines'][b][task]['map']:.3f}"
                for b in ("mfcc", "logmel")
            ]
        )
    out = (
        f"Retrieval on the held split ({result['clips']} clips), every clip querying by id; seeds "
        f"{', '.join(str(s['seed']) for s in seeds)}, mean ± std:\n\n"
        + table(
            [
                "same …",
                "raydist P@10",
                "raydist mAP",
                "raydist, raw cosine (ablation)",
                "MFCC P@10 / mAP",
                "log-mel P@10 / mAP",
            ],
            rows,
        )
    )
    dup = seeds[0].get("duplicates")
    if dup:
        t, caught, grouped = threshold(result)
        d = np.array(dup["distances"])
        out += (
            "\n\nNear-duplicates (seed "
            + str(seeds[0]["seed"])
            + f", {len(d) // len(VARIANTS)} held clips × {len(VARIANTS)} "
            "re-encodings queried as audio): the original at rank 1 for "
            + ", ".join(f"{v} {100 * r:.1f}%" for v, r in dup["rank1"].items())
            + f". Distance to the original: median {np.median(d):.3f}, 99th percentile {np.percentile(d, 99):.3f}, "
            f"max {d.max():.3f}; nearest other clip: median {np.median(dup['nearest_other']):.3f}. "
            f"`raydist dedupe`'s default threshold, the one that best separates the two: {t:.2f}; within it are "
            f"{100 * caught:.1f}% of the copies and {100 * grouped:.1f}% of the held clips' nearest other clips. "
            f"{dup.get('twins', 0)} held clips have a byte-identical twin in the corpus (espeak-ng draws that "
            "coincide); for them either file at rank 1 counts."
        )
    if result.get("scale"):
        srows = [
            [
                f"{s['n']:,}",
                f"{s['build_s']:.0f} s",
                f"{s['peak_rss_mb']:.0f} MB",
                f"{s['recall10']:.3f}",
                f"{s['latency']['10']['p50_ms']:.1f} / {s['latency']['10']['p99_ms']:.1f} ms",
                f"{s['latency']['10000']['p50_ms']:.0f} / {s['latency']['10000']['p99_ms']:.0f} ms",
                f"{s['ann']['partitions']} partitions, {s['ann']['sub_vectors']} sub-vectors"
                if s["ann"]
                else "exhaustive",
            ]
            for s in result["scale"]
        ]
        out += "\n\nScale (synthetic vectors around the real embeddings, see above):\n\n" + table(
            ["vectors", "build", "peak RSS", "recall@10 vs exact", "k=10 p50 / p99", "k=10,000 p50 / p99", "index"],
            srows,
        )
    return out


def headline(result: dict) -> list[tuple[str, str]]:
    seeds, out = result["seeds"], []
    p10 = {t: np.mean([s["retrieval"][t]["p10"] for s in seeds]) for t in TASKS}
    base = result["baselines"]["mfcc"]
    out.append(
        (
            "search: same-word / speaker / family P@10 on held clips (MFCC)",
            " / ".join(f"{p10[t]:.3f}" for t in TASKS)
            + " ("
            + " / ".join(f"{base[t]['p10']:.3f}" for t in TASKS)
            + ")",
        )
    )
    if result.get("scale"):
        s = result["scale"][-1]
        out.append(
            (
                f"search: {s['n']:,} vectors, recall@10 and k=10 p99 latency",
                f"{s['recall10']:.3f}, {s['latency']['10']['p99_ms']:.0f} ms",
            )
        )
    return out

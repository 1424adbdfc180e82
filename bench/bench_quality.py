"""Embedding quality on the demo corpus: linear/MLP probes and boundary F-measure, VAE against
log-mel and MFCC baselines, at a chosen training length.

    .venv/bin/python bench/bench_quality.py --steps 2000

Writes the demo corpus (200 clips, 5 classes, events between silences), trains a VAE in-process
on it for --steps steps (or takes --model), then reports, all in one run:
- probe accuracy (grouped 5-fold; logistic and MLP) of the clip embedding against log-mel and
  MFCC mean/std;
- boundary precision/recall/F at 0.5 s and 0.25 s of novelty on the latents alone, on the latents
  plus the activity channel (what `raydist embed` writes), on raw log-mel (the baseline), and on
  raw log-mel plus the same activity channel.
"""

from __future__ import annotations

import argparse
import collections
import csv
import itertools
import json
import os
import tempfile

import numpy as np

from raydist.audio import decode
from raydist.boundaries import boundary_scores
from raydist.config import EmbedConfig
from raydist.corpus import write_corpus
from raydist.embedding import encode_many, scene_embedding
from raydist.evaluation import WINDOWS, boundary_times, pooled_logmel
from raydist.model.checkpoint import load_model
from raydist.probe import baseline_features, probe
from raydist.segmentation import with_activity
from raydist.testing import quick_checkpoint


def scores(reference: dict[str, list[float]], estimated: dict[str, list[float]]) -> dict[str, list[float]]:
    """Mean (precision, recall, F) over clips at each tolerance window."""
    return {
        f"{w}s": [
            float(np.mean([boundary_scores(reference[i], est, w)[k] for i, est in estimated.items()]))
            for k in ("precision", "recall", "f_measure")
        ]
        for w in WINDOWS
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="checkpoint to judge (default: train one on the demo corpus)")
    ap.add_argument("--steps", type=int, default=2000, help="training steps of 16 windows")
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--out", default="bench-quality.json")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="quality")
    manifest = write_corpus(os.path.join(root, "corpus"), args.clips)
    rows = list(csv.DictReader(open(manifest)))
    uris = [os.path.join(root, "corpus", r["uri"]) for r in rows]
    reference: dict[str, list[float]] = collections.defaultdict(list)
    for r in csv.DictReader(open(os.path.join(root, "corpus", "segments.csv"))):
        reference[r["id"]] += [float(r["start_s"]), float(r["end_s"])]
    model = args.model or quick_checkpoint(os.path.join(root, "ckpt"), manifest, steps=args.steps, hidden=128)
    m = load_model(model)
    lats = encode_many(m, [decode(u, m.features.sample_rate)[0] for u in uris])
    ids, labels = [r["id"] for r in rows], [r["label"] for r in rows]
    report: dict = {"clips": len(rows), "model": model, "steps": args.steps if not args.model else None}

    features = {
        "vae": np.stack([scene_embedding(lat.mean) for lat in lats]),
        "logmel": baseline_features(uris, "logmel"),
        "mfcc": baseline_features(uris, "mfcc"),
    }
    print(f"{'probe':22s} {'accuracy':>9s} {'macro-F1':>9s}")
    for (name, x), kind in itertools.product(features.items(), ("logistic", "mlp")):
        r = probe(x, labels, ids, kind=kind)
        report[f"probe/{name}/{kind}"] = [r.accuracy, r.macro_f1]
        print(f"{name + ' ' + kind:22s} {r.accuracy:9.3f} {r.macro_f1:9.3f}")

    d, cfg = m.vae.cfg.downsample, EmbedConfig()
    mels = [pooled_logmel(u, d) for u in uris]
    sequences = {
        "latents": [lat.mean for lat in lats],
        "latents+activity": [with_activity(lat.mean, lat.energy, cfg.activity_weight) for lat in lats],
        "logmel": [mel for mel, _ in mels],
        "logmel+activity": [with_activity(mel, energy, cfg.activity_weight) for mel, energy in mels],
    }
    print(f"\n{'boundaries':22s} " + " ".join(f"{f'P/R/F @{w}s':>20s}" for w in WINDOWS))
    for name, seqs in sequences.items():
        s = scores(reference, {i: boundary_times(seq, d, cfg) for i, seq in zip(ids, seqs)})
        report[f"boundaries/{name}"] = s
        print(f"{name:22s} " + " ".join(f"{'/'.join(f'{v:.3f}' for v in s[f'{w}s']):>20s}" for w in WINDOWS))
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

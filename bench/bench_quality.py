"""Embedding quality on the demo corpus: linear/MLP probes and boundary F-measure, VAE against
log-mel and MFCC baselines, at a chosen training length.

    .venv/bin/python bench/bench_quality.py              # the shipped training settings (20 epochs)
    .venv/bin/python bench/bench_quality.py --epochs 60

Writes the demo corpus (200 clips, 5 classes, events between silences), trains a VAE on it with
the shipped trainer's step and settings (`raydist.train.local`: TrainConfig/ModelConfig/LossConfig
defaults, global batch of workers x batch_size windows) for --epochs (or exactly --steps), or
takes --model, then reports, all in one run:
- probe accuracy (grouped 5-fold; logistic and MLP) of the clip embedding, and of its latent
  part alone, against log-mel and MFCC mean/std;
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
from raydist.config import SegmentConfig, TrainConfig
from raydist.demo.corpus import write_corpus
from raydist.embedding.encode import encode_many
from raydist.embedding.features import scene_embedding
from raydist.embedding.segmentation import with_activity
from raydist.eval.boundaries import boundary_scores
from raydist.eval.probe import baseline_features, probe
from raydist.eval.segments import WINDOWS, boundary_times, pooled_logmel
from raydist.model.checkpoint import load_model
from raydist.train.local import train_local


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
    ap.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="training epochs (shipped default)")
    ap.add_argument("--steps", type=int, help="train exactly this many steps instead")
    ap.add_argument("--seed", type=int, default=0, help="model initialisation seed")
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
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed)
    model = args.model or train_local([manifest], os.path.join(root, "ckpt"), cfg, steps=args.steps)
    m = load_model(model)
    lats = encode_many(m, [decode(u, m.features.sample_rate)[0] for u in uris])
    ids, labels = [r["id"] for r in rows], [r["label"] for r in rows]
    report: dict = {"clips": len(rows), "model": model, "train_config": None if args.model else cfg.to_dict()}
    report["steps"] = m.step

    features = {
        "vae": np.stack([scene_embedding(lat.mean, lat.early) for lat in lats]),
        "vae_latent_part": np.stack([scene_embedding(lat.mean) for lat in lats]),
        "logmel": baseline_features(uris, "logmel", m.features),
        "mfcc": baseline_features(uris, "mfcc", m.features),
    }
    print(f"{'probe':22s} {'accuracy':>9s} {'macro-F1':>9s}")
    for (name, x), kind in itertools.product(features.items(), ("logistic", "mlp")):
        r = probe(x, labels, ids, kind=kind)
        report[f"probe/{name}/{kind}"] = [r.accuracy, r.macro_f1]
        print(f"{name + ' ' + kind:22s} {r.accuracy:9.3f} {r.macro_f1:9.3f}")

    d, seg = m.vae.cfg.downsample, SegmentConfig()
    mels = [pooled_logmel(u, d, m.features) for u in uris]
    sequences = {
        "latents": [lat.mean for lat in lats],
        "latents+activity": [with_activity(lat.mean, lat.energy, seg.activity_weight) for lat in lats],
        "logmel": [mel for mel, _ in mels],
        "logmel+activity": [with_activity(mel, energy, seg.activity_weight) for mel, energy in mels],
    }
    print(f"\n{'boundaries':22s} " + " ".join(f"{f'P/R/F @{w}s':>20s}" for w in WINDOWS))
    for name, seqs in sequences.items():
        s = scores(reference, {i: boundary_times(seq, d, m.features, seg) for i, seq in zip(ids, seqs)})
        report[f"boundaries/{name}"] = s
        print(f"{name:22s} " + " ".join(f"{'/'.join(f'{v:.3f}' for v in s[f'{w}s']):>20s}" for w in WINDOWS))
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Embedding quality on the demo corpus: linear/MLP probes and boundary F-measure, VAE against
log-mel and MFCC baselines, at a chosen training length.

    python -m bench quality                  # seeds 0 1 2, the shipped training settings (20 epochs)
    python -m bench quality --epochs 60 --seeds 0

Writes the demo corpus (200 clips, 5 classes, events between silences), trains a VAE on it per
seed with the shipped trainer's step and settings (`raydist.train.local`: TrainConfig, ModelConfig
and LossConfig defaults, global batch of workers x batch_size windows) for --epochs (or exactly
--steps), or takes --model, then reports, all in one run:
- probe accuracy (grouped 5-fold; logistic and MLP) of the clip embedding, and of its latent
  part alone, against log-mel and MFCC mean/std;
- boundary precision/recall/F at 0.5 s and 0.25 s of novelty on the latents alone, on the latents
  plus the activity channel (what `raydist embed` writes), on raw log-mel (the baseline), and on
  raw log-mel plus the same activity channel.

The VAE trains on 90% of these clips (validation clips held out by id hash), so the probe sees
mostly clips the model has reconstructed: a check against regressions, not a claim about unseen
sources (that is `features`). Every boundary here is an onset or offset against silence, which
energy alone marks well.
"""

from __future__ import annotations

import argparse
import collections
import csv
import itertools
import os
import tempfile

import numpy as np

from bench.report import mean_std, table
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


def one_seed(seed: int, args, root: str, manifest: str, rows: list[dict], reference: dict) -> dict:
    uris = [os.path.join(root, "corpus", r["uri"]) for r in rows]
    cfg = TrainConfig(epochs=args.epochs, seed=seed)
    model = args.model or train_local([manifest], os.path.join(root, f"ckpt{seed}"), cfg, steps=args.steps)
    m = load_model(model)
    lats = encode_many(m, [decode(u, m.features.sample_rate)[0] for u in uris])
    ids, labels = [r["id"] for r in rows], [r["label"] for r in rows]
    report: dict = {"seed": seed, "steps": m.step}
    features = {
        "vae": np.stack([scene_embedding(lat.mean, lat.early) for lat in lats]),
        "vae_latent_part": np.stack([scene_embedding(lat.mean) for lat in lats]),
        "logmel": baseline_features(uris, "logmel", m.features),
        "mfcc": baseline_features(uris, "mfcc", m.features),
    }
    for (name, x), kind in itertools.product(features.items(), ("logistic", "mlp")):
        r = probe(x, labels, ids, kind=kind)
        report[f"probe/{name}/{kind}"] = [r.accuracy, r.macro_f1]
    d, seg = m.vae.cfg.downsample, SegmentConfig()
    mels = [pooled_logmel(u, d, m.features) for u in uris]
    sequences = {
        "latents": [lat.mean for lat in lats],
        "latents+activity": [with_activity(lat.mean, lat.energy, seg.activity_weight) for lat in lats],
        "logmel": [mel for mel, _ in mels],
        "logmel+activity": [with_activity(mel, energy, seg.activity_weight) for mel, energy in mels],
    }
    for name, seqs in sequences.items():
        s = scores(reference, {i: boundary_times(seq, d, m.features, seg) for i, seq in zip(ids, seqs)})
        report[f"boundaries/{name}"] = s
    print(f"seed {seed}: " + ", ".join(f"{k} {v[0]:.3f}" for k, v in report.items() if k.startswith("probe/")))
    return report


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench quality", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="checkpoint to judge (default: train one per seed on the demo corpus)")
    ap.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="training epochs (shipped default)")
    ap.add_argument("--steps", type=int, help="train exactly this many steps instead")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="model initialisation seeds")
    ap.add_argument("--clips", type=int, default=200)
    args = ap.parse_args(argv)
    root = tempfile.mkdtemp(prefix="quality")
    manifest = write_corpus(os.path.join(root, "corpus"), args.clips)
    rows = list(csv.DictReader(open(manifest)))
    reference: dict[str, list[float]] = collections.defaultdict(list)
    for r in csv.DictReader(open(os.path.join(root, "corpus", "segments.csv"))):
        reference[r["id"]] += [float(r["start_s"]), float(r["end_s"])]
    seeds = [one_seed(seed, args, root, manifest, rows, reference) for seed in args.seeds]
    result = {"clips": len(rows), "epochs": args.epochs, "model": args.model, "seeds": seeds}
    print(render(result))
    return result


PROBES = {
    "vae": "VAE clip embedding (what `raydist embed` writes)",
    "vae_latent_part": "its latent part alone (ablation)",
    "logmel": "log-mel mean, std",
    "mfcc": "MFCC mean, std",
}
BOUNDARIES = {
    "latents+activity": "latent novelty + activity channel (what `raydist embed` writes)",
    "latents": "latent novelty alone",
    "logmel": "raw log-mel novelty (the baseline `segment-eval` reports)",
    "logmel+activity": "raw log-mel novelty + the same activity channel",
}


def render(result: dict) -> str:
    seeds = result["seeds"]
    probes = table(
        ["features", "logistic probe", "MLP probe"],
        [
            [label] + [mean_std([s[f"probe/{name}/{kind}"][0] for s in seeds]) for kind in ("logistic", "mlp")]
            for name, label in PROBES.items()
        ],
    )
    bounds = table(
        ["novelty", "P / R / F at 0.5 s", "P / R / F at 0.25 s"],
        [
            [label]
            + [
                " / ".join(f"{np.mean([s[f'boundaries/{name}'][w][k] for s in seeds]):.3f}" for k in range(3))
                for w in ("0.5s", "0.25s")
            ]
            for name, label in BOUNDARIES.items()
        ],
    )
    steps = sorted({s["steps"] for s in seeds})
    head = (
        f"{result['clips']} clips, {len(seeds)} seed(s) ({', '.join(str(s['seed']) for s in seeds)}), "
        f"{'/'.join(map(str, steps))} training steps; accuracy of grouped 5-fold probes, mean ± std over seeds."
    )
    return f"{head}\n\n{probes}\n\nBoundaries (mean over seeds):\n\n{bounds}"


def headline(result: dict) -> list[tuple[str, str]]:
    seeds = result["seeds"]
    f = [s["boundaries/latents+activity"]["0.5s"][2] for s in seeds]
    base = np.mean([s["boundaries/logmel"]["0.5s"][2] for s in seeds])
    return [
        (
            "demo corpus: event boundary F@0.5 s (log-mel novelty)",
            f"{mean_std(f)} ({base:.3f})",
        )
    ]

"""Clip features on sources the model never saw: raydist's clip embedding against log-mel and MFCC
mean/std, by linear probe with grouped folds, over several training seeds.

    apt-get install espeak-ng fluidsynth fluid-soundfont-gm
    .venv/bin/python bench/bench_features.py --split held --seeds 0 1 2 --epochs 90

Builds a corpus (`featcorpus.py`: spoken words from 6 espeak-ng voices, phrases from 24 General
MIDI programs in 8 families), then for each seed runs the shipped commands as a user would:
`raydist train MANIFEST` (Ray Train, every setting at its default but --epochs/--seed/--preset/
--contrast) and `raydist embed`, and probes the `clips.embedding` column (logistic regression,
5 grouped folds):
- word (10 classes), folds grouped by voice: test voices never seen by the probe;
- speaker (6 voices), folds grouped by word: test words never seen by the probe;
- instrument family (8), folds grouped by program: test programs never seen by the probe.
It also probes the embedding's latent part alone (mean, std of the latent means: the embedding
before the first-stage features were added) on the same checkpoints, as an ablation.
The VAE trains unsupervised on the split's own audio (no labels). --split held uses voices and
programs that no setting of the objective was tuned on; --split tune is the set that was.
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

sys.path.insert(0, os.path.dirname(__file__))
from featcorpus import build  # noqa: E402

from raydist.config import FeatureConfig, LossConfig  # noqa: E402
from raydist.eval.probe import baseline_features, probe  # noqa: E402
from raydist.io.store import read_table  # noqa: E402
from raydist.model.checkpoint import load_model  # noqa: E402

TASKS = {
    "word": ("speech", "word", "voice"),
    "speaker": ("speech", "voice", "word"),
    "family": ("instrument", "family", "program"),
}


def probes(x: np.ndarray, rows: list[dict]) -> dict[str, float]:
    out = {}
    for task, (kind, label, group) in TASKS.items():
        keep = np.array([r["kind"] == kind for r in rows])
        sub = [r for r in rows if r["kind"] == kind]
        out[task] = probe(x[keep], [r[label] for r in sub], [r[group] for r in sub]).accuracy
    return out


def run(cmd: list[str], log: str) -> float:
    t = time.perf_counter()
    with open(log, "w") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("tune", "held"), default="held")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=90, help="training epochs (about 10 min on 2 cores)")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--contrast", type=float, default=LossConfig.contrast, help="0 = the plain ELBO (ablation)")
    ap.add_argument("--root", help="work folder (default: a new temporary one)")
    ap.add_argument("--out", default="bench-features.json")
    args = ap.parse_args()
    root = args.root or tempfile.mkdtemp(prefix="feat")
    manifest = os.path.join(root, "manifest.csv")
    if not os.path.exists(manifest):
        build(root, args.split)
    rows = list(csv.DictReader(open(manifest)))
    uris = [os.path.join(root, r["uri"]) for r in rows]
    raydist = os.path.join(os.path.dirname(sys.executable), "raydist")
    report: dict = {"split": args.split, "clips": len(rows), "epochs": args.epochs, "preset": args.preset}
    report["contrast"] = args.contrast
    for name in ("logmel", "mfcc"):
        report[name] = probes(baseline_features(uris, name, FeatureConfig()), rows)
    seeds = []
    for seed in args.seeds:
        ckpt, emb = os.path.join(root, f"ckpt{seed}"), os.path.join(root, f"emb{seed}")
        train_s = run(
            [raydist, "train", manifest, "--out", ckpt, "--epochs", str(args.epochs), "--seed", str(seed)]
            + ["--preset", args.preset, "--contrast", str(args.contrast)],
            os.path.join(root, f"train{seed}.log"),
        )
        run([raydist, "embed", manifest, "--model", ckpt, "--out", emb], os.path.join(root, f"embed{seed}.log"))
        clips = read_table(emb, "clips", columns=["id", "embedding"]).to_pydict()
        by_id = dict(zip(clips["id"], clips["embedding"]))
        x = np.array([by_id[r["id"]] for r in rows], np.float32)
        meta = json.load(open(os.path.join(ckpt, "metrics.json")))["final"]
        latent_part = 2 * load_model(ckpt).vae.cfg.latent_dim
        seeds.append(
            {
                "seed": seed,
                "train_s": train_s,
                **probes(x, rows),
                **{f"latents_only/{k}": v for k, v in probes(x[:, :latent_part], rows).items()},
                **{k: meta.get(k) for k in ("val_loss", "active_dims")},
            }
        )
        print(f"seed {seed}: {json.dumps(seeds[-1])}", flush=True)
    report["seeds"] = seeds
    print(
        f"\n{args.split} split, {len(rows)} clips, preset {args.preset}, {args.epochs} epochs, contrast {args.contrast}"
    )
    print(f"{'task':8s} {'raydist mean ± std (min-max)':>30s} {'log-mel':>8s} {'MFCC':>6s} {'vs best':>8s}")
    for task in TASKS:
        v = np.array([s[task] for s in seeds])
        best = max(report["logmel"][task], report["mfcc"][task])
        report[f"{task}/mean"], report[f"{task}/std"] = float(v.mean()), float(v.std())
        print(
            f"{task:8s} {v.mean():>12.3f} ± {v.std():.3f} ({v.min():.3f}-{v.max():.3f}) "
            f"{report['logmel'][task]:8.3f} {report['mfcc'][task]:6.3f} {v.mean() - best:+8.3f}"
        )
    print(
        "latent part alone: " + ", ".join(f"{t} {np.mean([s[f'latents_only/{t}'] for s in seeds]):.3f}" for t in TASKS)
    )
    print(f"training: {np.mean([s['train_s'] for s in seeds]) / 60:.1f} min per seed (whole `raydist train` command)")
    print(
        f"validation loss {np.mean([s['val_loss'] for s in seeds]):.3f}, active dims {[s['active_dims'] for s in seeds]}"
    )
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

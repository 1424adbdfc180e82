"""Clip features on sources the model never saw: raydist's clip embedding against log-mel and MFCC
mean/std, by linear probe with grouped folds, over several training seeds.

    apt-get install espeak-ng fluidsynth fluid-soundfont-gm
    python -m bench features --split held --seeds 0 1 2 --epochs 90

Builds a corpus (`bench/corpora/labelled.py`: spoken words from 6 espeak-ng voices, phrases from 24 General
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

from bench.corpora.labelled import build
from bench.report import mean_std, table
from raydist.config import FeatureConfig, LossConfig
from raydist.eval.probe import baseline_features, probe
from raydist.io.store import read_table
from raydist.model.checkpoint import load_model

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


def setup(root: str | None, split: str, prefix: str) -> tuple[str, str, list[dict], dict]:
    """The labelled corpus of `split` under `root` (built unless there), its manifest, its rows,
    and the log-mel and MFCC baselines' probe scores on it."""
    root = root or tempfile.mkdtemp(prefix=prefix)
    manifest = os.path.join(root, "manifest.csv")
    if not os.path.exists(manifest):
        build(root, split)
    rows = list(csv.DictReader(open(manifest)))
    uris = [os.path.join(root, r["uri"]) for r in rows]
    baselines = {name: probes(baseline_features(uris, name, FeatureConfig()), rows) for name in ("logmel", "mfcc")}
    return root, manifest, rows, baselines


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench features", description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("tune", "held"), default="held")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=90, help="training epochs (about 10 min on 2 cores)")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--contrast", type=float, default=LossConfig.contrast, help="0 = the plain ELBO (ablation)")
    ap.add_argument("--root", help="work folder (default: a new temporary one)")
    args = ap.parse_args(argv)
    root, manifest, rows, baselines = setup(args.root, args.split, "feat")
    raydist = os.path.join(os.path.dirname(sys.executable), "raydist")
    report: dict = {"split": args.split, "clips": len(rows), "epochs": args.epochs, "preset": args.preset}
    report["contrast"] = args.contrast
    report.update(baselines)
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
    print(render(report))
    return report


LABELS = {
    "word": "word (unseen voices)",
    "speaker": "speaker (unseen words)",
    "family": "instrument family (unseen programs)",
}


def render(result: dict) -> str:
    seeds = result["seeds"]
    rows = []
    for task, label in LABELS.items():
        v = [s[task] for s in seeds]
        best = max(result["logmel"][task], result["mfcc"][task])
        rows.append(
            [
                label,
                f"**{mean_std(v)}** ({min(v):.3f}–{max(v):.3f})",
                mean_std([s[f"latents_only/{task}"] for s in seeds]),
                f"{result['logmel'][task]:.3f}",
                f"{result['mfcc'][task]:.3f}",
                f"{np.mean(v) - best:+.3f}",
            ]
        )
    head = (
        f"{result['split']} split, {result['clips']} clips; `raydist train` with every default but `--epochs "
        f"{result['epochs']}` (preset {result['preset']}, contrast {result['contrast']}), seeds "
        f"{', '.join(str(s['seed']) for s in seeds)}; logistic probe accuracy, 5 grouped folds, mean ± std (range)."
    )
    t = table(
        ["task", "clip embedding", "its latent part alone", "log-mel mean, std", "MFCC mean, std", "vs best baseline"],
        rows,
    )
    train = np.mean([s["train_s"] for s in seeds]) / 60
    val = mean_std([s["val_loss"] for s in seeds])
    return f"{head}\n\n{t}\n\nTraining: {train:.1f} min per seed (the whole `raydist train` command); validation loss {val}."


def headline(result: dict) -> list[tuple[str, str]]:
    seeds, out = result["seeds"], []
    for task, label in LABELS.items():
        v = [s[task] for s in seeds]
        out.append((f"held-out {label} accuracy (MFCC)", f"{mean_std(v)} ({result['mfcc'][task]:.3f})"))
    return out

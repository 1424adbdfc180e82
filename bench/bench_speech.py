"""Linear probes on real synthesized speech: VAE clip embeddings against log-mel and MFCC baselines.

    apt-get install espeak-ng
    .venv/bin/python bench/bench_speech.py --epochs 20

Speaks WORDS with every voice in VOICES at every speed in SPEEDS (espeak-ng, 22.05 kHz WAV), trains
a VAE on that corpus with the shipped trainer's step and settings (`raydist.train.local`), or takes
--model, and runs the grouped 5-fold logistic probe on
two tasks: which word (folds grouped by voice: unseen voices at test time) and which voice (folds
grouped by word), on the clip embedding, on its latent part alone (ablation), and on log-mel and
MFCC mean/std of the same clips. Prints one table and writes it as JSON.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import shutil
import subprocess
import tempfile

import numpy as np

from raydist.config import ModelConfig, TrainConfig
from raydist.embedding.encode import encode_many
from raydist.embedding.features import scene_embedding
from raydist.eval.probe import baseline_features, probe
from raydist.model.checkpoint import load_model
from raydist.train.local import train_local

WORDS = ("yes", "no", "stop", "go", "left", "right", "seven", "zero")
VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-us+f5", "en-gb-scotland", "en-us+m7", "en-029")
SPEEDS = (120, 165, 210)


def speak(root: str) -> str:
    """Write the corpus and its manifest (uri, id, label=word, voice); return the manifest path."""
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed: apt-get install espeak-ng")
    rows = []
    for word, voice, speed in itertools.product(WORDS, VOICES, SPEEDS):
        name = f"{word}_{voice.replace('+', '_')}_{speed}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", os.path.join(root, name), word], check=True)
        rows.append({"uri": name, "id": name, "label": word, "voice": voice})
    path = os.path.join(root, "manifest.csv")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["uri", "id", "label", "voice"])
        w.writeheader()
        w.writerows(rows)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="checkpoint to probe (default: train one on the speech corpus)")
    ap.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="training epochs (shipped default)")
    ap.add_argument("--steps", type=int, help="train exactly this many steps instead")
    ap.add_argument("--latent-dim", type=int, default=ModelConfig.latent_dim)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench-speech.json")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="speech")
    manifest = speak(root)
    rows = list(csv.DictReader(open(manifest)))
    uris = [os.path.join(root, r["uri"]) for r in rows]
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed)
    model = args.model or train_local(
        [manifest], os.path.join(root, "ckpt"), cfg, ModelConfig(latent_dim=args.latent_dim), steps=args.steps
    )
    m = load_model(model)
    from raydist.audio import decode

    waves = [decode(u, m.features.sample_rate)[0] for u in uris]
    vae = np.stack([scene_embedding(lat.mean, lat.early) for lat in encode_many(m, waves)])
    features = {
        "vae": vae,
        "vae-latent": vae[:, : 2 * m.vae.cfg.latent_dim],  # the latent part alone (ablation)
        "logmel": baseline_features(uris, "logmel", m.features),
        "mfcc": baseline_features(uris, "mfcc", m.features),
    }
    words, voices = [r["label"] for r in rows], [r["voice"] for r in rows]
    report = {"clips": len(rows), "model": model}
    print(f"{len(rows)} clips: {len(WORDS)} words x {len(VOICES)} voices x {len(SPEEDS)} speeds")
    print(f"{'features':10s} {'probe':8s} {'word acc':>9s} {'word F1':>8s} {'voice acc':>10s} {'voice F1':>9s}")
    for (name, x), kind in itertools.product(features.items(), ("logistic", "mlp")):
        word = probe(x, words, voices, kind=kind)  # grouped by voice: generalise to voices not seen in training
        voice = probe(x, voices, words, kind=kind)  # grouped by word
        report[f"{name}/{kind}"] = {"word": [word.accuracy, word.macro_f1], "voice": [voice.accuracy, voice.macro_f1]}
        print(
            f"{name:10s} {kind:8s} {word.accuracy:9.3f} {word.macro_f1:8.3f} {voice.accuracy:10.3f} {voice.macro_f1:9.3f}"
        )
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

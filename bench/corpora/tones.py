"""Synthetic clips and an untrained model for throughput benchmarks: the work per clip is what
counts there, not what the clips sound like.

    from bench.corpora.tones import make_corpus, make_model
"""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf


def make_corpus(root: str, clips: int, seconds: float, sr: int, first: int = 0) -> list[str]:
    """`clips` WAVs of a random tone (100-1000 Hz) in light noise, named c00000.wav...; their paths."""
    rng = np.random.default_rng(first)
    os.makedirs(root, exist_ok=True)
    paths = []
    t = np.arange(int(seconds * sr)) / sr
    for i in range(first, first + clips):
        f0 = rng.uniform(100, 1000)
        x = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.05 * rng.standard_normal(len(t))
        p = os.path.join(root, f"c{i:05d}.wav")
        sf.write(p, x.astype(np.float32), sr, subtype="PCM_16")
        paths.append(p)
    return paths


def make_model(path: str) -> str:
    """An untrained default-size VAE checkpoint (seed 0) under `path`; its model.pt."""
    import torch

    from raydist.config import FeatureConfig, LossConfig, ModelConfig
    from raydist.model.checkpoint import save_checkpoint
    from raydist.model.vae import AudioVAE

    torch.manual_seed(0)
    save_checkpoint(path, AudioVAE(ModelConfig()), FeatureConfig(), LossConfig(), 0, 0)
    return os.path.join(path, "model.pt")

"""Generation, no Ray: sample latents from the prior, or interpolate between two clips' latents,
and decode them to audio files."""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf

from raydist.audio import decode
from raydist.codec.inversion import latents_to_audio_batch
from raydist.embedding.encode import encode_many
from raydist.model.checkpoint import LoadedModel


def _write(path: str, wave: np.ndarray, sr: int) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sf.write(path, wave, sr, subtype="PCM_16")
    return path


def sample(m: LoadedModel, out: str, n: int, seconds: float, seed: int = 0, temperature: float = 1.0) -> list[str]:
    """Write `n` files of `seconds` decoded from z ~ N(0, temperature^2 I)."""
    if n < 1 or seconds <= 0:
        raise ValueError(f"need n >= 1 and seconds > 0, got n={n}, seconds={seconds}")
    rng = np.random.default_rng(seed)
    num_samples = int(round(seconds * m.features.sample_rate))
    frames = m.vae.latent_frames(1 + num_samples // m.features.hop_length)
    zs = [(temperature * rng.standard_normal((frames, m.vae.cfg.latent_dim))).astype(np.float32) for _ in range(n)]
    waves = latents_to_audio_batch(m, zs, [num_samples] * n)  # one decoder pass for all
    return [_write(os.path.join(out, f"sample_{i:03d}.wav"), w, m.features.sample_rate) for i, w in enumerate(waves)]


def interpolate(m: LoadedModel, a: str, b: str, out: str, steps: int) -> list[str]:
    """Decode `steps` points on the straight line between the latent sequences of files a and b
    (cropped to the shorter one)."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    waves = [decode(p, m.features.sample_rate)[0] for p in (a, b)]
    za, zb = (lat.mean for lat in encode_many(m, waves))
    frames = min(len(za), len(zb))
    num_samples = min(len(w) for w in waves)
    zs = [((1 - t) * za[:frames] + t * zb[:frames]).astype(np.float32) for t in np.linspace(0.0, 1.0, steps)]
    waves = latents_to_audio_batch(m, zs, [num_samples] * steps)
    return [_write(os.path.join(out, f"interp_{k:03d}.wav"), w, m.features.sample_rate) for k, w in enumerate(waves)]

"""Segment boundaries from a latent sequence: a novelty curve (distance between the mean latent
just before and just after each frame boundary, Foote-style) plus peak picking. numpy only.

The pipeline appends an activity channel (the clip's standardised log-mel energy per frame) to
the latents before taking novelty: onsets and offsets against silence are boundaries too, and the
latents alone blur them (measured in `bench/bench_quality.py`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raydist.config import FeatureConfig


@dataclass
class Segment:
    start: int  # first latent frame
    stop: int  # one past the last latent frame
    score: float  # novelty at the segment's opening boundary (0 for the first segment)


def novelty(x: np.ndarray, half_width: int) -> np.ndarray:
    """(L, D) -> (L,): at each boundary j (before frame j), the Euclidean distance between the mean
    of frames [j - w, j) and of frames [j, j + w), windows clipped at the ends; 0 at j = 0."""
    n = len(x)
    out = np.zeros(n, np.float32)
    if n < 2:
        return out
    c = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0, dtype=np.float64)])
    j = np.arange(1, n)
    lo, hi = np.maximum(0, j - half_width), np.minimum(n, j + half_width)
    left = (c[j] - c[lo]) / (j - lo)[:, None]
    right = (c[hi] - c[j]) / (hi - j)[:, None]
    out[1:] = np.linalg.norm(left - right, axis=1)
    return out


def with_activity(x: np.ndarray, energy: np.ndarray, weight: float = 1.0) -> np.ndarray:
    """(L, D) latents, (L,) energy -> (L, D + 1): energy standardised over the clip and scaled so
    its spread is `weight` times the latents' total spread (root of the summed per-dim
    variances); weight 0 returns the latents unchanged."""
    if weight == 0 or len(x) < 2:
        return x
    z = (energy - energy.mean()) / (energy.std() + 1e-6)
    spread = float(np.sqrt(x.var(0).sum())) or 1.0
    return np.concatenate([x, (weight * spread * z)[:, None]], axis=1).astype(x.dtype, copy=False)


def pick_boundaries(curve: np.ndarray, min_gap: int, threshold: float, neighbourhood: int | None = None) -> list[int]:
    """Peaks of `curve`: maxima of their +-neighbourhood (default min_gap) that exceed
    median + threshold * MAD, taken greedily from the strongest, at least min_gap apart and
    never within min_gap of the ends."""
    n, hood = len(curve), max(1, neighbourhood or min_gap)
    if n < 2 * min_gap + 1:
        return []
    med = float(np.median(curve))
    mad = float(np.median(np.abs(curve - med))) or 1e-6
    floor = med + threshold * mad
    picked: list[int] = []
    for j in np.argsort(-curve, kind="stable"):
        if curve[j] <= floor:
            break
        is_peak = curve[j] >= curve[max(0, j - hood) : j + hood + 1].max()
        if is_peak and min_gap <= j <= n - min_gap and all(abs(j - p) >= min_gap for p in picked):
            picked.append(int(j))
    return sorted(picked)


def segment(x: np.ndarray, half_width: int, min_gap: int, threshold: float) -> tuple[list[Segment], np.ndarray]:
    """Split a (L, D) latent sequence into segments; also return the novelty curve."""
    curve = novelty(x, half_width)
    edges = [0, *pick_boundaries(curve, min_gap, threshold), len(x)]
    segs = [Segment(a, b, float(curve[a]) if a else 0.0) for a, b in zip(edges[:-1], edges[1:])]
    return segs, curve


def boundary_s(j: int, downsample: int, features: FeatureConfig) -> float:
    """Time of the boundary before latent frame j: between its first mel frame and the one before."""
    return max(0.0, (j * downsample - 0.5) * features.hop_length / features.sample_rate)


def edge_s(j: int, n_frames: int, duration_s: float, downsample: int, features: FeatureConfig) -> float:
    """Segment edge time: 0 at the start, the clip's duration at the end, else boundary_s."""
    return 0.0 if j == 0 else duration_s if j >= n_frames else boundary_s(j, downsample, features)

"""Segment boundaries from a latent sequence: a novelty curve (distance between the mean latent
just before and just after each frame boundary, Foote-style) plus peak picking. numpy only.

The pipeline appends an activity channel (the clip's standardised log-mel energy per frame) to
the latents before taking novelty: onsets and offsets against silence are boundaries too, and the
latents alone blur them (measured in `bench/bench_quality.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from raydist.config import FeatureConfig


@dataclass
class Segment:
    start: int  # first latent frame
    stop: int  # one past the last latent frame
    score: float  # novelty at the segment's opening boundary (0 for the first segment)


class Cut(NamedTuple):
    """A boundary between sources: the latent frame that begins the new source's region, the
    Ward distance of the regions it separates, and whether a pause comes before it."""

    frame: int
    distance: float
    after_pause: bool


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


def active_runs(active: np.ndarray) -> list[tuple[int, int]]:
    """(L,) bool -> [(start, stop)] of each maximal run of True frames."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def _ward(sum_a: np.ndarray, n_a: float, sum_b: np.ndarray, n_b: float) -> float:
    """Ward distance of two regions given their sums and sizes (see `ward_distance`)."""
    diff = sum_a / n_a - sum_b / n_b
    return float(np.linalg.norm(diff) * np.sqrt(n_a * n_b / (n_a + n_b) / len(diff)))


def ward_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Size-weighted distance of two regions' mean vectors, per dimension: the square root of the
    rise in within-region variance that merging them costs (Ward's criterion), over sqrt(D)."""
    return _ward(x.sum(0), len(x), y.sum(0), len(y))


def source_boundaries(
    x: np.ndarray,
    active: np.ndarray,
    half_width: int,
    threshold: float,
    merge: float,
    weights: np.ndarray | None = None,
    middle: bool = False,
    min_size: int = 1,
) -> list[Cut]:
    """Boundaries between regions of one source in a (L, D) sequence.

    Regions start as the runs of active frames; long-window novelty over the active frames only
    (silence skipped, each dimension standardised over them, then scaled by its entry in
    `weights`, default 1) splits runs where the source changes without a pause. Adjacent regions
    (across pauses) are then merged, closest first, while their Ward distance is below `merge`;
    a region of fewer than `min_size` sound frames is merged into a neighbour first (the one it
    touches without a pause, else the closer).
    A boundary across a pause is the new source's first active frame (`middle`: the middle of
    the pause, where earlier raydist put it). Regions are kept as sums and
    sizes, and a merge recomputes only its two neighbouring distances, so an hour of audio with
    thousands of pauses takes well under a second."""
    runs = active_runs(active)
    if len(runs) == 0:
        return []
    frames = np.concatenate([np.arange(a, b) for a, b in runs])  # active frame indices
    z = x[frames]
    z = (z - z.mean(0)) / (z.std(0) + 1e-6)
    if weights is not None:
        z = z * weights
    cuts = set()
    if len(z) > 2 * half_width:
        cuts = {int(frames[j]) for j in pick_boundaries(novelty(z, half_width), half_width, threshold)}
    position = np.full(len(x), -1)
    position[frames] = np.arange(len(frames))
    bounds = []  # (first frame, stop frame) of each region
    for a, b in runs:
        points = [a, *sorted(c for c in cuts if a < c < b), b]
        bounds += list(zip(points[:-1], points[1:]))
    first = np.array([position[a] for a, _ in bounds])  # each region's first row in z
    sums = [row for row in np.add.reduceat(z, first, axis=0)]  # z rows of a region are contiguous
    sizes = list(np.diff(np.append(first, len(z))).astype(float))

    def join(k: int) -> None:  # regions k and k + 1 become one
        bounds[k : k + 2] = [(bounds[k][0], bounds[k + 1][1])]
        sums[k : k + 2] = [sums[k] + sums[k + 1]]
        sizes[k : k + 2] = [sizes[k] + sizes[k + 1]]

    # a region of fewer than min_size sound frames (a partial frame at an onset, a click) joins a
    # neighbour first, whatever the distance: the one it touches without a pause, else the closer
    k = 0
    while len(bounds) > 1 and k < len(bounds):
        if sizes[k] >= min_size:
            k += 1
            continue
        sides = [s for s in (k - 1, k + 1) if 0 <= s < len(bounds)]
        pause = {s: max(bounds[s][0], bounds[k][0]) - min(bounds[s][1], bounds[k][1]) for s in sides}
        side = min(sides, key=lambda s: (pause[s] > 0, _ward(sums[s], sizes[s], sums[k], sizes[k])))
        join(min(k, side))
        k = min(k, side)
    gaps = [_ward(sums[k], sizes[k], sums[k + 1], sizes[k + 1]) for k in range(len(bounds) - 1)]
    while gaps:
        k = int(np.argmin(gaps))
        if gaps[k] >= merge:
            break
        join(k)
        del gaps[k]
        if k > 0:
            gaps[k - 1] = _ward(sums[k - 1], sizes[k - 1], sums[k], sizes[k])
        if k < len(gaps):
            gaps[k] = _ward(sums[k], sizes[k], sums[k + 1], sizes[k + 1])
    out = []
    for k in range(len(bounds) - 1):
        (_, stop), (start, _) = bounds[k], bounds[k + 1]
        j = (stop + start) // 2 if start > stop and middle else start
        out.append(Cut(int(j), _ward(sums[k], sizes[k], sums[k + 1], sizes[k + 1]), start > stop))
    return out

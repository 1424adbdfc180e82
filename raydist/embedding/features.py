"""One clip's latents -> what clips/, events/ and segments/ hold about it, numpy only: the clip
embedding, activity, the novelty curve, events (where sound starts and stops) and source segments
(regions of one source), each with its embedding. The pipeline's encoder
actors call `clip_features` per clip; tests call it on hand-made latents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from raydist.config import FeatureConfig, SegmentConfig
from raydist.embedding.segmentation import edge_s, segment, source_boundaries, with_activity

SILENCE_BELOW_PEAK = 6.9  # nats of log-mel power (30 dB) under the clip's loudest frame
SILENCE_FLOOR = -9.2  # log(1e-4): frames quieter than this are silent whatever the peak


def scene_embedding(mean: np.ndarray, early: np.ndarray | None = None) -> np.ndarray:
    """(L, D) latent means and (L, H) first-stage features -> the clip embedding (2 D + 2 H,):
    [mean over time, std over time] of the latent means, then of the first-stage features.
    Without `early`, the (2 D,) latent part alone (what the invariance term trains)."""
    parts = [mean] if early is None else [mean, early]
    return np.concatenate([s for x in parts for s in (x.mean(0), x.std(0))]).astype(np.float32)


def active_frames(energy: np.ndarray) -> np.ndarray:
    """(L,) energy -> (L,) bool: frames within 30 dB of the clip's loudest and above the floor."""
    return energy > max(SILENCE_FLOOR, float(energy.max()) - SILENCE_BELOW_PEAK)


EVENT_ACTIVE = 0.5  # an event-level piece is an event when at least this share of its frames is active


@dataclass
class Regions:
    """Regions of one clip, one entry each: times, score of the opening boundary, activity and
    mean latent."""

    start: np.ndarray  # (R,) seconds
    end: np.ndarray  # (R,) seconds
    score: np.ndarray  # (R,) float32: strength of the boundary that opens the region (0 for a first)
    active: np.ndarray  # (R,) float32: share of active frames
    embedding: np.ndarray  # (R, D) float64: mean latent (segments: over their active frames)


@dataclass
class ClipFeatures:
    embedding: np.ndarray  # (2 D + 2 H,) clip embedding (`scene_embedding`)
    energy_mean: float  # mean log-mel energy
    active_fraction: float  # share of active latent frames
    novelty: np.ndarray  # (L,) event-level novelty before each frame
    events: Regions  # where sound starts and stops (and sudden changes inside it)
    segments: Regions  # regions of one source; they tile the clip


def _regions(
    mean: np.ndarray,
    active: np.ndarray,
    edges: list[int],
    scores: list[float],
    duration_s: float,
    edge: Callable[[int, int, float], float],
    active_only: bool,
) -> Regions:
    """Regions [edges[k], edges[k+1]) of frames -> Regions (embeddings over active frames if asked)."""
    n = len(mean)
    starts, stops = np.array(edges[:-1]), np.array(edges[1:])
    weights = active.astype(np.float64) if active_only else np.ones(n)
    per_region = lambda v: np.add.reduceat(v, starts, axis=0)  # noqa: E731  # sums over each region
    count = per_region(weights)
    fallback = count == 0  # a region with no active frame: mean over all of it
    sums = np.where(fallback[:, None], per_region(mean.astype(np.float64)), per_region(mean * weights[:, None]))
    return Regions(
        start=np.array([edge(j, n, duration_s) for j in starts]),
        end=np.array([edge(j, n, duration_s) for j in stops]),
        score=np.array(scores, np.float32),
        active=(per_region(active.astype(np.float32)) / (stops - starts)).astype(np.float32),
        embedding=sums / np.where(fallback, stops - starts, count)[:, None],
    )


def clip_features(
    mean: np.ndarray,
    energy: np.ndarray,
    duration_s: float,
    cfg: SegmentConfig,
    downsample: int,
    features: FeatureConfig,
    cepstra: np.ndarray | None = None,
    early: np.ndarray | None = None,
    clock: tuple[float, float] | None = None,
) -> ClipFeatures:
    """(L, D) latent means, (L,) energy, (L, C) cepstra and (L, H) first-stage features of one
    clip -> its ClipFeatures.
    Source segments split and merge on the latents and the cepstra (weighted by
    cfg.cepstral_weight); without cepstra, on the latents alone."""
    n = len(mean)
    if clock is None:  # the VAE's latent frames
        rate = features.frame_rate / downsample
        edge = lambda j, n, d: edge_s(j, n, d, downsample, features)  # noqa: E731
    else:  # another encoder's frames: (frames per second, centre of the first), boundaries half way
        rate, first = clock
        edge = lambda j, n, d: 0.0 if j == 0 else d if j >= n else max(0.0, first + (j - 0.5) / rate)  # noqa: E731
    half, gap = cfg.novelty_frames(rate)
    pieces, curve = segment(with_activity(mean, energy, cfg.activity_weight), half, gap, cfg.novelty_threshold)
    active = active_frames(energy)
    tiles = _regions(
        mean,
        active,
        [p.start for p in pieces] + [n],
        [p.score for p in pieces],
        duration_s,
        edge,
        False,
    )
    keep = tiles.active >= EVENT_ACTIVE
    events = Regions(*(getattr(tiles, f)[keep] for f in ("start", "end", "score", "active", "embedding")))
    x, weights = mean, None
    if cepstra is not None and cfg.cepstral_weight > 0:  # the spectral envelope beside the latents
        x = np.concatenate([mean, cepstra], axis=1)
        weights = np.repeat([1.0, cfg.cepstral_weight], [mean.shape[1], cepstra.shape[1]])
    source = source_boundaries(x, active, cfg.source_frames(rate), cfg.source_threshold, cfg.merge_distance, weights)
    segments = _regions(
        mean,
        active,
        [0, *(j for j, _ in source), n],
        [0.0, *(d for _, d in source)],
        duration_s,
        edge,
        True,
    )
    return ClipFeatures(
        embedding=scene_embedding(mean, early),
        energy_mean=float(energy.mean()),
        active_fraction=float(active.mean()),
        novelty=curve,
        events=events,
        segments=segments,
    )

"""One clip's latents -> what clips/ and segments/ hold about it, numpy only: the clip embedding,
activity, the novelty curve and the segments with their embeddings. The pipeline's encoder
actors call `clip_features` per clip; tests call it on hand-made latents."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raydist.config import FeatureConfig, SegmentConfig
from raydist.embedding.segmentation import edge_s, segment, with_activity

SILENCE_BELOW_PEAK = 6.9  # nats of log-mel power (30 dB) under the clip's loudest frame
SILENCE_FLOOR = -9.2  # log(1e-4): frames quieter than this are silent whatever the peak


def scene_embedding(mean: np.ndarray) -> np.ndarray:
    """(L, D) latent means -> (2 D,) [mean over time, std over time]: the clip embedding."""
    return np.concatenate([mean.mean(0), mean.std(0)]).astype(np.float32)


def active_frames(energy: np.ndarray) -> np.ndarray:
    """(L,) energy -> (L,) bool: frames within 30 dB of the clip's loudest and above the floor."""
    return energy > max(SILENCE_FLOOR, float(energy.max()) - SILENCE_BELOW_PEAK)


@dataclass
class ClipFeatures:
    embedding: np.ndarray  # (2 D,) scene embedding
    energy_mean: float  # mean log-mel energy
    active_fraction: float  # share of active latent frames
    novelty: np.ndarray  # (L,) novelty before each frame
    seg_start: np.ndarray  # (S,) seconds
    seg_end: np.ndarray  # (S,) seconds
    seg_score: np.ndarray  # (S,) float32 novelty at each segment's opening boundary
    seg_active: np.ndarray  # (S,) float32 share of active frames per segment
    seg_embedding: np.ndarray  # (S, D) float64 mean latent per segment


def clip_features(
    mean: np.ndarray,
    energy: np.ndarray,
    duration_s: float,
    cfg: SegmentConfig,
    downsample: int,
    features: FeatureConfig,
) -> ClipFeatures:
    """(L, D) latent means and (L,) energy of one clip -> its ClipFeatures. Segments tile the clip."""
    n = len(mean)
    half, gap = cfg.novelty_frames(features.frame_rate / downsample)
    segs, curve = segment(with_activity(mean, energy, cfg.activity_weight), half, gap, cfg.novelty_threshold)
    active = active_frames(energy)
    starts = np.array([s.start for s in segs])
    lengths = np.diff(np.append(starts, n))  # no segment is empty
    return ClipFeatures(
        embedding=scene_embedding(mean),
        energy_mean=float(energy.mean()),
        active_fraction=float(active.mean()),
        novelty=curve,
        seg_start=np.array([edge_s(s.start, n, duration_s, downsample, features) for s in segs]),
        seg_end=np.array([edge_s(s.stop, n, duration_s, downsample, features) for s in segs]),
        seg_score=np.array([s.score for s in segs], np.float32),
        seg_active=(np.add.reduceat(active.astype(np.float32), starts) / lengths).astype(np.float32),
        seg_embedding=np.add.reduceat(mean, starts, axis=0, dtype=np.float64) / lengths[:, None],
    )

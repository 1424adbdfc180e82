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


N_CEPSTRA = 12  # cepstral coefficients c1..c12 kept per latent frame (c0 is the energy)


def cepstral_basis(n_mels: int, n: int = N_CEPSTRA) -> np.ndarray:
    """(n_mels, n) orthonormal DCT-II basis of coefficients c1..cn: log-mel @ basis gives the
    cepstra (as torchaudio's create_dct(norm="ortho") without its first column)."""
    k, m = np.arange(1, n + 1), np.arange(n_mels) + 0.5
    return (np.sqrt(2.0 / n_mels) * np.cos(np.pi / n_mels * np.outer(m, k))).astype(np.float32)


NOISE_PERCENTILE = 10  # a clip's noise floor: the energy its quietest 10% of frames stay under


def noise_floor(bands: np.ndarray) -> np.ndarray:
    """(L, n_mels) log-mel -> (n_mels,): each band's noise floor, the level its quietest 10% of
    frames stay under (in clean audio, the log floor of digital silence)."""
    return np.percentile(bands, NOISE_PERCENTILE, axis=0)


def denoised_cepstra(bands: np.ndarray, floor: np.ndarray, n: int = N_CEPSTRA, keep: float = 0.03) -> np.ndarray:
    """(L, n_mels) log-mel and its per-band noise floor -> (L, n) cepstra c1..cn of the log-mel
    with the floor's power taken off (spectral subtraction; at least `keep` of each band's power
    is kept): in steady noise they describe the source rather than the mixture."""
    power = np.exp(bands.astype(np.float64))
    clean = np.log(np.maximum(power - np.exp(floor), keep * power))
    return (clean @ cepstral_basis(bands.shape[1], n)).astype(np.float32)


def level_free(x: np.ndarray, energy: np.ndarray, sound: np.ndarray) -> np.ndarray:
    """(L, D) features less their least-squares linear dependence on the frame energy, fitted
    over the sound frames: the part of each dimension a change of level does not move."""
    if sound.sum() < 3:
        return x
    e = energy - energy[sound].mean()
    beta = (e[sound, None] * (x[sound] - x[sound].mean(0))).sum(0) / max(float((e[sound] ** 2).sum()), 1e-9)
    return x - e[:, None] * beta[None]


def sound_threshold(energy: np.ndarray, noise_margin_db: float = 0.0, floor: float | None = None) -> float:
    """Energy above which a frame is sound: within 30 dB of the clip's loudest and above the
    absolute floor; with a margin, also that many dB above the clip's noise floor (`floor`, the
    mean of its per-band floors; default the 10th percentile of `energy`), so that the pauses of
    a recording in steady noise are pauses. A clip whose loud frames (90th percentile) stand
    less than twice the margin above its floor has no pauses to find: the margin is not used."""
    threshold = max(SILENCE_FLOOR, float(energy.max()) - SILENCE_BELOW_PEAK)
    margin = noise_margin_db * np.log(10) / 10
    if margin > 0:
        floor = float(np.percentile(energy, NOISE_PERCENTILE)) if floor is None else floor
        if float(np.percentile(energy, 90)) - floor >= 2 * margin:
            threshold = max(threshold, floor + margin)
    return threshold


def active_frames(energy: np.ndarray) -> np.ndarray:
    """(L,) energy -> (L,) bool: frames within 30 dB of the clip's loudest and above the floor."""
    return energy > sound_threshold(energy)


def onset_s(
    j: int, mel_energy: np.ndarray, energy: np.ndarray, threshold: float, downsample: int, features: FeatureConfig
) -> float:
    """Where a source that begins at latent frame j after a pause first sounds: the centre of the
    first mel frame in latent frames j - 1 and j (frame j is the first whose mean is sound; the
    onset may begin in the frame before) that is half way from the sound threshold to the
    source's level (the median energy of its first two latent frames)."""
    threshold = (threshold + max(threshold, float(np.median(energy[j : j + 2])))) / 2
    lo = max(0, (j - 1) * downsample)
    above = np.flatnonzero(mel_energy[lo : (j + 1) * downsample] > threshold)
    return (lo + int(above[0]) if len(above) else j * downsample) / features.frame_rate


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
    cut_s: list[float] | None = None,
) -> Regions:
    """Regions [edges[k], edges[k+1]) of frames -> Regions (embeddings over active frames if asked);
    the times between them are `cut_s` where given, else the frame edges."""
    n = len(mean)
    starts, stops = np.array(edges[:-1]), np.array(edges[1:])
    times = [edge(j, n, duration_s) for j in edges]
    if cut_s is not None:
        times[1:-1] = cut_s
    weights = active.astype(np.float64) if active_only else np.ones(n)
    per_region = lambda v: np.add.reduceat(v, starts, axis=0)  # noqa: E731  # sums over each region
    count = per_region(weights)
    fallback = count == 0  # a region with no active frame: mean over all of it
    sums = np.where(fallback[:, None], per_region(mean.astype(np.float64)), per_region(mean * weights[:, None]))
    return Regions(
        start=np.array(times[:-1]),
        end=np.array(times[1:]),
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
    mel_energy: np.ndarray | None = None,
    bands: np.ndarray | None = None,
) -> ClipFeatures:
    """(L, D) latent means, (L,) energy, (L, C) cepstra and (L, H) first-stage features of one
    clip -> its ClipFeatures.
    Source segments split and merge on the latents and the cepstra (weighted by
    cfg.cepstral_weight); without cepstra, on the latents alone. Given the log-mel `bands`
    (L, n_mels) of each latent frame, the cepstra are taken from them with each band's noise
    floor subtracted, and sound must stand cfg.noise_margin_db above that floor. A source that
    begins after a pause begins at its onset, found in `mel_energy` (T,) at the mel frame rate
    (`onset_s`), or without it at its first latent frame of sound."""
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
    floor = None
    if bands is not None:  # the spectral envelope with the noise floor taken off
        floor = noise_floor(bands)
        cepstra = denoised_cepstra(bands, floor, cfg.n_cepstra)
    elif cepstra is not None:
        cepstra = cepstra[:, : cfg.n_cepstra]
    threshold = sound_threshold(energy, cfg.noise_margin_db, None if floor is None else float(floor.mean()))
    sound = energy > threshold
    x, weights = level_free(mean, energy, sound), None
    if cepstra is not None and cfg.cepstral_weight > 0:  # the spectral envelope beside the latents
        x = np.concatenate([x, cepstra], axis=1)
        weights = np.repeat([1.0, cfg.cepstral_weight], [mean.shape[1], cepstra.shape[1]])
    middle = cfg.placement == "middle"
    args = (cfg.source_frames(rate), cfg.source_threshold, cfg.merge_distance, weights, middle, gap)
    source = source_boundaries(x, sound, *args)
    cut_s = None
    if mel_energy is not None and clock is None and not middle:
        cut_s = [
            onset_s(c.frame, mel_energy, energy, threshold, downsample, features)
            if c.after_pause
            else edge(c.frame, n, duration_s)
            for c in source
        ]
    edges, scores = [0, *(c.frame for c in source), n], [0.0, *(c.distance for c in source)]
    segments = _regions(mean, sound, edges, scores, duration_s, edge, True, cut_s)
    return ClipFeatures(
        embedding=scene_embedding(mean, early),
        energy_mean=float(energy.mean()),
        active_fraction=float(active.mean()),
        novelty=curve,
        events=events,
        segments=segments,
    )

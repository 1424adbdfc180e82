"""Novelty and boundary picking on sequences with known change points."""

from __future__ import annotations

import numpy as np
import pytest

from raydist.embedding.segmentation import novelty, pick_boundaries, segment, with_activity


def test_novelty_of_a_step_peaks_at_the_step():
    x = np.concatenate([np.zeros((20, 3)), np.ones((20, 3))])
    curve = novelty(x, half_width=5)
    assert int(np.argmax(curve)) == 20
    assert curve[20] == pytest.approx(np.sqrt(3), rel=1e-6)
    assert curve[0] == 0 and curve[5] == 0


def test_segments_recover_known_boundaries_in_noise():
    rng = np.random.default_rng(0)
    levels = [0.0, 2.0, -1.0, 1.0]
    x = np.concatenate([np.full((25, 4), v) for v in levels]) + rng.normal(0, 0.1, (100, 4))
    segs, curve = segment(x, half_width=6, min_gap=3, threshold=3.0)
    assert [s.start for s in segs] == [0, 25, 50, 75]
    assert segs[-1].stop == 100 and len(curve) == 100
    assert all(s.score > 0 for s in segs[1:])


def test_no_boundaries_in_a_stationary_sequence():
    x = np.random.default_rng(1).normal(0, 1, (200, 8))
    segs, _ = segment(x, half_width=6, min_gap=3, threshold=8.0)
    assert len(segs) == 1


def test_pick_boundaries_respects_the_gap_and_the_ends():
    curve = np.zeros(50)
    curve[[1, 20, 22, 48]] = [5, 4, 3, 5]
    assert pick_boundaries(curve, min_gap=3, threshold=1.0) == [20]


def test_activity_channel_has_the_latents_spread_and_finds_an_onset_they_miss():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (60, 4))  # latents with no change point
    energy = np.r_[np.full(30, -11.0), np.full(30, -3.0)] + rng.normal(0, 0.05, 60)  # silence, then sound
    y = with_activity(x, energy, weight=2.0)
    assert y.shape == (60, 5) and np.array_equal(y[:, :4], x)
    assert y[:, 4].std() == pytest.approx(2.0 * np.sqrt(x.var(0).sum()), rel=1e-3)
    assert with_activity(x, energy, weight=0.0) is x
    assert all(abs(s.start - 30) > 2 for s in segment(x, 3, 2, 3.0)[0])
    assert [s.start for s in segment(y, 3, 2, 3.0)[0]] == [0, 30]


def _source(rng, centre: np.ndarray, n: int) -> np.ndarray:
    return centre + 0.3 * rng.standard_normal((n, len(centre)))


def test_ward_distance_closed_form():
    from raydist.embedding.segmentation import ward_distance

    x, y = np.zeros((1, 4)), np.full((3, 4), 2.0)  # means 0 and 2 in 4 dims: |diff| = 4
    assert ward_distance(x, y) == pytest.approx(4.0 * np.sqrt(1 * 3 / 4 / 4))


def test_active_runs():
    from raydist.embedding.segmentation import active_runs

    assert active_runs(np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 1], bool)) == [(1, 3), (5, 6), (7, 10)]
    assert active_runs(np.zeros(4, bool)) == [] and active_runs(np.ones(3, bool)) == [(0, 3)]


def test_source_boundaries_ignore_pauses_inside_a_source_and_find_joins_without_one():
    """A (pause) A | B (pause) B (pause) B, with no pause at the A|B join: one boundary, at the join;
    then C after a pause: a second boundary, in the middle of that pause."""
    from raydist.embedding.segmentation import source_boundaries

    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(8) * 2 for _ in range(3))
    sil = np.zeros((4, 8))
    parts = [_source(rng, a, 12), sil, _source(rng, a, 12), _source(rng, b, 12), sil, _source(rng, b, 10), sil]
    parts += [_source(rng, b, 10), np.zeros((6, 8)), _source(rng, c, 12)]
    x = np.concatenate(parts)
    active = np.concatenate([np.abs(p).sum(1) > 0 for p in parts])
    found = source_boundaries(x, active, half_width=6, threshold=1.0, merge=1.65)
    join, pause_mid = 12 + 4 + 12, 12 + 4 + 12 + 12 + 4 + 10 + 4 + 10 + 3
    assert [j for j, _ in found] == [join, pause_mid], found
    assert all(d >= 1.65 for _, d in found)
    # one source throughout, pauses and all: no boundary
    one = np.concatenate([_source(rng, a, 15), sil, _source(rng, a, 15), sil, _source(rng, a, 15)])
    mask = np.abs(one).sum(1) > 0
    assert source_boundaries(one, mask, 6, 1.0, 1.65) == []
    assert source_boundaries(one, np.zeros(len(one), bool), 6, 1.0, 1.65) == []


def test_cepstra_find_a_change_of_source_the_latents_miss():
    """Latents of one source throughout, cepstra (the spectral envelope) that change half way with
    no pause: source segments split there only when the cepstra are used."""
    from raydist.config import FeatureConfig, SegmentConfig
    from raydist.embedding.features import clip_features

    rng = np.random.default_rng(3)
    latents = _source(rng, rng.standard_normal(32), 60)
    a, b = rng.standard_normal(12), rng.standard_normal(12)
    cepstra = np.concatenate([_source(rng, a, 30), _source(rng, b, 30)])
    energy = np.zeros(60)  # every frame active
    args = (latents, energy, 60 * 0.08, SegmentConfig(), 8, FeatureConfig())
    found = clip_features(*args, cepstra).segments
    assert len(found.start) == 2 and found.start[1] == pytest.approx(30 * 0.08 - 0.005)
    assert found.score[1] >= SegmentConfig().merge_distance
    assert len(clip_features(*args).segments.start) == 1  # latents alone
    off = SegmentConfig(cepstral_weight=0.0)
    assert len(clip_features(latents, energy, 60 * 0.08, off, 8, FeatureConfig(), cepstra).segments.start) == 1

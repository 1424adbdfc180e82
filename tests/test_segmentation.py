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
    then C after a pause: a second boundary, at C's first frame (or, asked, the middle of the pause)."""
    from raydist.embedding.segmentation import source_boundaries

    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(8) * 2 for _ in range(3))
    sil = np.zeros((4, 8))
    parts = [_source(rng, a, 12), sil, _source(rng, a, 12), _source(rng, b, 12), sil, _source(rng, b, 10), sil]
    parts += [_source(rng, b, 10), np.zeros((6, 8)), _source(rng, c, 12)]
    x = np.concatenate(parts)
    active = np.concatenate([np.abs(p).sum(1) > 0 for p in parts])
    found = source_boundaries(x, active, half_width=6, threshold=1.0, merge=1.65)
    join, c_starts = 12 + 4 + 12, 12 + 4 + 12 + 12 + 4 + 10 + 4 + 10 + 6
    assert [(c.frame, c.after_pause) for c in found] == [(join, False), (c_starts, True)], found
    assert all(c.distance >= 1.65 for c in found)
    middle = source_boundaries(x, active, half_width=6, threshold=1.0, merge=1.65, middle=True)
    assert [c.frame for c in middle] == [join, c_starts - 3]
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


def test_cepstral_basis_is_torchaudios_dct_without_c0():
    from torchaudio.functional import create_dct

    from raydist.embedding.features import cepstral_basis

    np.testing.assert_allclose(cepstral_basis(64), create_dct(13, 64, norm="ortho")[:, 1:].numpy(), atol=1e-6)


def test_denoised_cepstra_ignore_gain_and_take_off_the_noise_floor():
    from raydist.embedding.features import cepstral_basis, denoised_cepstra, noise_floor

    rng = np.random.default_rng(4)
    envelope = rng.normal(-4, 2, 64)  # a source's log-mel envelope
    quiet = np.log(1e-4) + rng.normal(0, 0.05, (20, 64))  # steady noise
    bands = np.concatenate([quiet, envelope + rng.normal(0, 0.1, (60, 64))])
    a = denoised_cepstra(bands, noise_floor(bands))
    louder = bands + np.log(10**1.2)  # +12 dB: every band's power times 10^1.2, the floor too
    np.testing.assert_allclose(denoised_cepstra(louder, noise_floor(louder)), a, atol=1e-4)
    # with the noise taken off, the source's frames have the cepstra of its own envelope
    np.testing.assert_allclose(a[20:].mean(0), envelope @ cepstral_basis(64), atol=0.15)


def test_level_free_removes_a_linear_dependence_on_energy():
    from raydist.embedding.features import level_free

    rng = np.random.default_rng(5)
    energy = rng.normal(-3, 1, 50)
    base = rng.normal(0, 1, (50, 4))
    x = base + energy[:, None] * np.array([2.0, -1.0, 0.0, 0.5])
    sound = np.ones(50, bool)
    y = level_free(x, energy, sound)
    e = energy - energy.mean()
    assert np.abs((y - y.mean(0)).T @ e).max() < 1e-8  # no correlation with energy is left
    np.testing.assert_allclose(level_free(base + 7.0, energy, sound).std(0), level_free(base, energy, sound).std(0))


def test_sound_stands_above_the_noise_floor():
    from raydist.embedding.features import active_frames, sound_threshold

    energy = np.r_[np.full(30, -2.0), np.full(30, 0.0)]  # steady noise at -2, sound at 0 (8.7 dB above)
    assert active_frames(energy).all()  # within 30 dB of the peak: all "active"
    threshold = sound_threshold(energy, noise_margin_db=3.0)
    assert threshold == pytest.approx(-2.0 + 3.0 * np.log(10) / 10)
    assert list(energy > threshold) == [False] * 30 + [True] * 30
    assert sound_threshold(energy) == pytest.approx(-6.9)  # no margin: the 30 dB rule alone
    assert sound_threshold(energy, 3.0, floor=-9.0) == pytest.approx(-6.9)  # a floor far below changes nothing
    steady = np.full(40, -1.0)  # no pauses: the clip's floor is its sound, and the margin is not used
    assert (steady > sound_threshold(steady, 3.0)).all()


def test_onset_is_the_first_mel_frame_half_way_up():
    from raydist.config import FeatureConfig
    from raydist.embedding.features import onset_s

    mel = np.full(80, -11.0)
    mel[43:] = -1.0  # the source starts at mel frame 43 (0.43 s); latent frames of 8 mel frames
    mel[42] = -8.0  # a softer first frame, under half way from the threshold (-8.5) to the level (-1)
    energy = mel.reshape(10, 8).mean(1)
    assert onset_s(6, mel, energy, -8.5, 8, FeatureConfig()) == pytest.approx(0.43)
    mel[42] = -3.0  # now above half way
    assert onset_s(6, mel, energy, -8.5, 8, FeatureConfig()) == pytest.approx(0.42)


def test_a_boundary_across_a_pause_sits_at_the_onset_or_in_the_middle():
    from raydist.config import FeatureConfig, SegmentConfig
    from raydist.embedding.features import clip_features

    rng = np.random.default_rng(6)
    a, b = rng.standard_normal(12) * 3, rng.standard_normal(12) * 3
    n = 60  # latent frames: A for 20, a pause of 10, B from frame 30
    latents = rng.standard_normal((n, 8)) * 0.1
    cepstra = np.concatenate([_source(rng, a, 20), np.zeros((10, 12)), _source(rng, b, 30)])
    mel = np.full(n * 8, -11.5)
    mel[:160] = -2.0
    mel[237:] = -2.0  # B's first sound: mel frame 237, in latent frame 29 (a partial frame, joined to B)
    energy = mel.reshape(n, 8).mean(1)
    args = (latents, energy, n * 0.08, SegmentConfig(), 8, FeatureConfig(), cepstra)
    onset = clip_features(*args, mel_energy=mel).segments
    assert list(onset.start) == pytest.approx([0.0, 2.37]) and onset.end[0] == onset.start[1]
    middle = clip_features(*args[:3], SegmentConfig(placement="middle"), *args[4:], mel_energy=mel).segments
    assert list(middle.start) == pytest.approx([0.0, 24 * 0.08 - 0.005])  # silent frames 20-28: the middle is 24
    with pytest.raises(ValueError, match="placement"):
        SegmentConfig(placement="later")
    with pytest.raises(ValueError, match="n_cepstra"):
        SegmentConfig(n_cepstra=0)

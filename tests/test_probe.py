"""Linear probe and boundary scores against cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from raydist.eval.boundaries import boundary_scores
from raydist.eval.probe import folds_for, macro_f1, probe


def _blobs(n_per_class: int = 40, classes: int = 4, dims: int = 8, spread: float = 0.3, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (classes, dims))
    x = np.concatenate([c + rng.normal(0, spread, (n_per_class, dims)) for c in centres])
    y = [f"c{i}" for i in range(classes) for _ in range(n_per_class)]
    return x.astype(np.float32), y


def test_separable_classes_are_probed_near_perfectly():
    x, y = _blobs()
    r = probe(x, y, k=5)
    assert r.accuracy > 0.97 and r.macro_f1 > 0.97
    assert r.confusion.sum() == len(y) and r.classes == ["c0", "c1", "c2", "c3"]


def test_shuffled_labels_fall_to_chance():
    x, y = _blobs(n_per_class=60)
    shuffled = list(np.random.default_rng(1).permutation(y))
    r = probe(x, shuffled, k=5)
    assert abs(r.accuracy - 0.25) < 0.12, r.accuracy


def test_mlp_probe_separates_what_a_linear_probe_cannot():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (400, 2)).astype(np.float32)
    y = ["same" if a * b > 0 else "diff" for a, b in x]  # XOR of signs: no line separates it
    linear, mlp = probe(x, y, k=5), probe(x, y, k=5, kind="mlp")
    assert linear.accuracy < 0.7 and mlp.accuracy > 0.9, (linear.accuracy, mlp.accuracy)
    with pytest.raises(ValueError, match="probe must be one of"):
        probe(x, y, kind="forest")


def test_groups_never_straddle_folds():
    groups = [f"speaker{i % 7}" for i in range(70)]
    folds = folds_for(groups, 5)
    for g in set(groups):
        assert len({f for f, gg in zip(folds, groups) if gg == g}) == 1


def test_macro_f1_closed_form():
    confusion = np.array([[8, 2], [4, 6]])  # class 0: P=8/12 R=8/10; class 1: P=6/8 R=6/10
    f0 = 2 * (8 / 12) * (8 / 10) / (8 / 12 + 8 / 10)
    f1 = 2 * (6 / 8) * (6 / 10) / (6 / 8 + 6 / 10)
    assert macro_f1(confusion) == pytest.approx((f0 + f1) / 2)


def test_boundary_f_measure_perfect_shifted_and_missing():
    ref = [1.0, 2.5, 4.0, 6.0]
    assert boundary_scores(ref, ref, 0.5)["f_measure"] == 1.0
    shifted = [t + 0.3 for t in ref]
    assert boundary_scores(ref, shifted, 0.5)["f_measure"] == 1.0
    assert boundary_scores(ref, shifted, 0.25)["f_measure"] == 0.0
    half = boundary_scores(ref, ref[:2], 0.5)
    assert (half["precision"], half["recall"]) == (1.0, 0.5)
    assert half["f_measure"] == pytest.approx(2 / 3)
    assert boundary_scores(ref, [1.0, 1.1, 1.2], 0.5)["precision"] == pytest.approx(1 / 3)  # one match each

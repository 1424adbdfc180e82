"""Boundary detection scores, numpy only: precision, recall and F-measure of estimated segment
boundaries against reference ones within a tolerance window, each reference matched at most once
(the usual hit-rate measure of MIREX structural segmentation)."""

from __future__ import annotations

import numpy as np


def matches(reference, estimated, window: float) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of the closest pairs within +-window seconds: (i, j) pairs of
    reference and estimated indices."""
    pairs = sorted(
        (abs(r - e), i, j) for i, r in enumerate(reference) for j, e in enumerate(estimated) if abs(r - e) <= window
    )
    used_r, used_e, out = set(), set(), []
    for _, i, j in pairs:
        if i not in used_r and j not in used_e:
            used_r.add(i), used_e.add(j)
            out.append((i, j))
    return out


def match_count(reference: np.ndarray, estimated: np.ndarray, window: float) -> int:
    return len(matches(reference, estimated, window))


def signed_offsets(reference, estimated, window: float) -> list[float]:
    """Estimated minus reference time of each matched pair (negative: the boundary is early)."""
    return [float(estimated[j] - reference[i]) for i, j in sorted(matches(reference, estimated, window))]


def boundary_scores(reference, estimated, window: float) -> dict[str, float]:
    """Precision, recall and F-measure of `estimated` against `reference` boundary times."""
    ref, est = np.asarray(reference, float), np.asarray(estimated, float)
    hits = match_count(ref, est, window)
    precision = hits / len(est) if len(est) else float(len(ref) == 0)
    recall = hits / len(ref) if len(ref) else float(len(est) == 0)
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f_measure": f}

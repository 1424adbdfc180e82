"""Boundary detection scores, numpy only: precision, recall and F-measure of estimated segment
boundaries against reference ones within a tolerance window, each reference matched at most once
(the usual hit-rate measure of MIREX structural segmentation)."""

from __future__ import annotations

import numpy as np


def match_count(reference: np.ndarray, estimated: np.ndarray, window: float) -> int:
    """Greedy one-to-one matching of the closest pairs within +-window seconds."""
    pairs = sorted(
        (abs(r - e), i, j) for i, r in enumerate(reference) for j, e in enumerate(estimated) if abs(r - e) <= window
    )
    used_r, used_e, hits = set(), set(), 0
    for _, i, j in pairs:
        if i not in used_r and j not in used_e:
            used_r.add(i), used_e.add(j)
            hits += 1
    return hits


def boundary_scores(reference, estimated, window: float) -> dict[str, float]:
    """Precision, recall and F-measure of `estimated` against `reference` boundary times."""
    ref, est = np.asarray(reference, float), np.asarray(estimated, float)
    hits = match_count(ref, est, window)
    precision = hits / len(est) if len(est) else float(len(ref) == 0)
    recall = hits / len(ref) if len(ref) else float(len(est) == 0)
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f_measure": f}

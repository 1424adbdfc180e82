"""`raydist segment-eval`, no Ray: boundary precision/recall/F of the detected segments against
reference boundaries, beside the same novelty and peak picking on raw log-mel, with the run's own
settings (read from its manifests), and a novelty-over-log-mel picture."""

from __future__ import annotations

import collections
import json
import os

import numpy as np
import pyarrow.csv as pacsv
import torch

from raydist.audio import LogMel, decode
from raydist.config import FeatureConfig, SegmentConfig
from raydist.embedding.segmentation import boundary_s, segment
from raydist.eval import plots
from raydist.eval.boundaries import boundary_scores, signed_offsets
from raydist.eval.settings import RunSettings, run_settings
from raydist.io.store import read_table

WINDOWS = (0.5, 0.25)


def pooled_logmel(uri: str, downsample: int, features: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Raw log-mel of a file averaged over `downsample` frames (the latent frame rate):
    ((L, bands) standardised per band over the clip, (L,) mean log-mel energy)."""
    with torch.inference_mode():
        mel = LogMel(features)(torch.from_numpy(decode(uri, features.sample_rate)[0])).numpy().T  # (T, bands)
    n = len(mel) // downsample * downsample
    pooled = mel[:n].reshape(-1, downsample, mel.shape[1]).mean(1)
    return (pooled - pooled.mean(0)) / (pooled.std(0) + 1e-6), pooled.mean(1)


def boundary_times(seq: np.ndarray, downsample: int, features: FeatureConfig, cfg: SegmentConfig) -> list[float]:
    """Boundary times in seconds of a (L, D) sequence at the latent frame rate, picked with the
    pipeline's novelty window, gap and threshold."""
    half, gap = cfg.novelty_frames(features.frame_rate / downsample)
    segs, _ = segment(seq, half, gap, cfg.novelty_threshold)
    return [boundary_s(s.start, downsample, features) for s in segs[1:]]


def logmel_boundaries(uri: str, settings: RunSettings) -> list[float]:
    """The baseline: the same novelty and peak picking on standardised raw log-mel (no activity
    channel), at the run's latent frame rate and with its segmentation settings."""
    d, features = settings.downsample, settings.features
    return boundary_times(pooled_logmel(uri, d, features)[0], d, features, settings.segments)


EDGE_S = 0.01  # boundaries this close to a clip's start or end are its edges, not boundaries


def interior(times, duration_s: float) -> list[float]:
    """Sorted distinct boundary times strictly inside a clip (edges and repeats dropped): the
    starts and ends of tiling segments and of separate events reduce to the same boundaries."""
    out: list[float] = []
    for t in sorted(times):
        if EDGE_S < t < duration_s - EDGE_S and (not out or t - out[-1] > 1e-3):
            out.append(t)
    return out


def reference_boundaries(truth: str, durations: dict[str, float]) -> dict[str, list[float]]:
    """Per clip of `durations`, the interior boundaries of a truth CSV (id, start_s, end_s)."""
    given: dict[str, list[float]] = collections.defaultdict(list)
    for r in pacsv.read_csv(truth).to_pylist():
        given[str(r["id"])] += [float(r["start_s"]), float(r["end_s"])]
    return {i: interior(times, durations[i]) for i, times in given.items() if i in durations}


def _boundaries(embeddings: str, table: str, durations: dict[str, float]) -> dict[str, list[float]]:
    """Per clip, the interior starts and ends of a region table (events or segments)."""
    times: dict[str, list[float]] = collections.defaultdict(list)
    for r in read_table(embeddings, table, columns=["id", "start_s", "end_s"]).to_pylist():
        times[r["id"]] += [r["start_s"], r["end_s"]]
    return {i: interior(times[i], d) for i, d in durations.items()}


def boundary_report(reference: dict[str, list[float]], estimated: dict[str, list[float]]) -> dict:
    """Mean P/R/F over clips at each window, the boundary counts, and the mean signed offset of
    the boundaries matched within 0.5 s (negative: early)."""
    out: dict = {
        f"{w}s": {
            k: float(np.mean([boundary_scores(reference[c], est, w)[k] for c, est in estimated.items()]))
            for k in ("precision", "recall", "f_measure")
        }
        for w in WINDOWS
    }
    out["boundaries"] = sum(len(v) for v in estimated.values())
    offsets = [o for c, est in estimated.items() for o in signed_offsets(reference[c], est, WINDOWS[0])]
    out["offset_s"] = float(np.mean(offsets)) if offsets else None
    return out


def run_segment_eval(embeddings: str, truth: str, out: str, baseline: bool = True) -> dict:
    """Boundary P/R/F at 0.5 s and 0.25 s of both levels (events, source segments) against a CSV
    of reference regions (id, start_s, end_s: their interior starts and ends are the reference
    boundaries), beside log-mel novelty; write segments.json and a picture of the first clip."""
    settings = run_settings(embeddings)
    os.makedirs(out, exist_ok=True)
    clips = {r["id"]: r for r in read_table(embeddings, "clips", columns=["id", "uri", "duration_s"]).to_pylist()}
    reference = reference_boundaries(truth, {i: c["duration_s"] for i, c in clips.items()})
    if not reference:
        raise ValueError(f"no clip of {embeddings} has reference segments in {truth}")
    durations = {i: clips[i]["duration_s"] for i in reference}
    methods = {level: _boundaries(embeddings, level, durations) for level in ("events", "segments")}
    if baseline:
        methods["logmel_novelty"] = {i: logmel_boundaries(clips[i]["uri"], settings) for i in durations}
    report: dict = {"clips": len(durations), "reference_boundaries": sum(len(v) for v in reference.values())}
    report.update({name: boundary_report(reference, est) for name, est in methods.items()})
    report["settings"] = {"segment_config": settings.segments.to_dict(), "downsample": settings.downsample}
    first = sorted(durations)[0]
    detected = {level: methods[level][first] for level in ("events", "segments")}
    report["pictures"] = [
        _novelty_picture(embeddings, clips[first], reference[first], detected, out, settings.features)
    ]
    with open(os.path.join(out, "segments.json"), "w") as f:
        json.dump(report, f, indent=2)
    return report


def _novelty_picture(embeddings: str, clip: dict, reference, detected, out: str, cfg: FeatureConfig) -> str:
    frames = read_table(embeddings, "frames", columns=["id", "novelty", "frame_rate"])
    row = next(r for r in frames.to_pylist() if r["id"] == clip["id"])
    with torch.inference_mode():
        mel = LogMel(cfg)(torch.from_numpy(decode(clip["uri"], cfg.sample_rate)[0])).numpy()
    path = os.path.join(out, f"novelty_{clip['id'].replace('/', '_')}.png")
    return plots.novelty_over_logmel(
        mel, cfg.frame_rate, np.array(row["novelty"]), row["frame_rate"], detected, reference, path
    )

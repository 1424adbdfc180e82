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
from raydist.eval.boundaries import boundary_scores
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


def run_segment_eval(embeddings: str, truth: str, out: str, baseline: bool = True) -> dict:
    """Boundary P/R/F at 0.5 s and 0.25 s against a CSV of reference segments (id, start_s,
    end_s); write segments.json and a novelty picture of the first clip under `out`."""
    settings = run_settings(embeddings)
    os.makedirs(out, exist_ok=True)
    reference: dict[str, list[float]] = collections.defaultdict(list)
    for r in pacsv.read_csv(truth).to_pylist():
        reference[str(r["id"])] += [float(r["start_s"]), float(r["end_s"])]
    estimated: dict[str, list[float]] = collections.defaultdict(list)
    for s in read_table(embeddings, "segments", columns=["id", "start_s"]).to_pylist():
        if s["start_s"] > 0:
            estimated[s["id"]].append(s["start_s"])
    clips = [r for r in read_table(embeddings, "clips", columns=["id", "uri"]).to_pylist() if r["id"] in reference]
    if not clips:
        raise ValueError(f"no clip of {embeddings} has reference segments in {truth}")
    methods = {"vae_novelty": {c["id"]: estimated[c["id"]] for c in clips}}
    if baseline:
        methods["logmel_novelty"] = {c["id"]: logmel_boundaries(c["uri"], settings) for c in clips}
    report: dict = {"clips": len(clips)}
    for name, est in methods.items():
        report[name] = {
            f"{w}s": {
                k: float(np.mean([boundary_scores(reference[c], est[c], w)[k] for c in est]))
                for k in ("precision", "recall", "f_measure")
            }
            for w in WINDOWS
        }
    report["settings"] = {"segment_config": settings.segments.to_dict(), "downsample": settings.downsample}
    report["pictures"] = [_novelty_picture(embeddings, clips[0], reference, estimated, out, settings.features)]
    with open(os.path.join(out, "segments.json"), "w") as f:
        json.dump(report, f, indent=2)
    return report


def _novelty_picture(embeddings: str, clip: dict, reference, estimated, out: str, cfg: FeatureConfig) -> str:
    frames = read_table(embeddings, "frames", columns=["id", "novelty", "frame_rate"])
    row = next(r for r in frames.to_pylist() if r["id"] == clip["id"])
    with torch.inference_mode():
        mel = LogMel(cfg)(torch.from_numpy(decode(clip["uri"], cfg.sample_rate)[0])).numpy()
    path = os.path.join(out, f"novelty_{clip['id'].replace('/', '_')}.png")
    return plots.novelty_over_logmel(
        mel,
        cfg.frame_rate,
        np.array(row["novelty"]),
        row["frame_rate"],
        estimated[clip["id"]],
        reference[clip["id"]],
        path,
    )

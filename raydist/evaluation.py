"""Judging an embedding run the way users do, no Ray: a linear probe on the clip embeddings
(against log-mel and MFCC baselines) and boundary F-measure of the detected segments (against
novelty on raw log-mel), with pictures and a markdown report."""

from __future__ import annotations

import collections
import json
import os

import numpy as np
import pyarrow.csv as pacsv
import torch

from raydist import plots
from raydist.audio import LogMel, decode
from raydist.boundaries import boundary_scores
from raydist.config import EmbedConfig, FeatureConfig
from raydist.embedding import boundary_s
from raydist.pipeline.store import read_table
from raydist.probe import baseline_features, probe
from raydist.segmentation import segment

WINDOWS = (0.5, 0.25)


def _labels(path: str) -> dict[str, tuple[str, str]]:
    """id -> (label, group) from a CSV with id and label columns (group optional)."""
    t = pacsv.read_csv(path).to_pylist()
    if not t or not {"id", "label"} <= set(t[0]):
        raise ValueError(f"{path} needs id and label columns")
    return {str(r["id"]): (str(r["label"]), str(r.get("group") or r["id"])) for r in t if r["label"] is not None}


def run_probe(
    embeddings: str, out: str, labels: str | None = None, folds: int = 5, baseline: bool = False, mlp: bool = False
) -> dict:
    """Probe the clip embeddings; write probe.json, projection.png and confusion.png under `out`."""
    os.makedirs(out, exist_ok=True)
    clips = sorted(
        read_table(embeddings, "clips", columns=["id", "uri", "label", "embedding"]).to_pylist(), key=lambda r: r["id"]
    )
    given = _labels(labels) if labels else {r["id"]: (r["label"], r["id"]) for r in clips if r["label"] is not None}
    rows = [r for r in clips if r["id"] in given]
    if len(rows) < 2 * folds:
        raise ValueError(f"only {len(rows)} clips have labels; need at least {2 * folds} for {folds} folds")
    x = np.array([r["embedding"] for r in rows], np.float32)
    y, groups = [given[r["id"]][0] for r in rows], [given[r["id"]][1] for r in rows]
    result = probe(x, y, groups, folds)
    report = {
        "clips": len(rows),
        "unlabelled": len(clips) - len(rows),
        "folds": folds,
        "classes": result.classes,
        "vae": {"accuracy": result.accuracy, "macro_f1": result.macro_f1, "confusion": result.confusion.tolist()},
    }
    if mlp:
        m = probe(x, y, groups, folds, kind="mlp")
        report["vae_mlp"] = {"accuracy": m.accuracy, "macro_f1": m.macro_f1}
    if baseline:
        for kind in ("logmel", "mfcc"):
            feats = baseline_features([r["uri"] for r in rows], kind)
            b = probe(feats, y, groups, folds)
            report[kind] = {"accuracy": b.accuracy, "macro_f1": b.macro_f1}
            if mlp:
                b = probe(feats, y, groups, folds, kind="mlp")
                report[f"{kind}_mlp"] = {"accuracy": b.accuracy, "macro_f1": b.macro_f1}
    report["pictures"] = [
        plots.embedding_projection(x, y, os.path.join(out, "projection.png")),
        plots.confusion_matrix(result.confusion, result.classes, os.path.join(out, "confusion.png")),
    ]
    with open(os.path.join(out, "probe.json"), "w") as f:
        json.dump(report, f, indent=2)
    return report


def pooled_logmel(uri: str, downsample: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Raw log-mel of a file averaged over `downsample` frames (the latent frame rate):
    ((L, bands) standardised per band over the clip, (L,) mean log-mel energy)."""
    features = FeatureConfig()
    with torch.inference_mode():
        mel = LogMel(features)(torch.from_numpy(decode(uri, features.sample_rate)[0])).numpy().T  # (T, bands)
    n = len(mel) // downsample * downsample
    pooled = mel[:n].reshape(-1, downsample, mel.shape[1]).mean(1)
    return (pooled - pooled.mean(0)) / (pooled.std(0) + 1e-6), pooled.mean(1)


def boundary_times(seq: np.ndarray, downsample: int = 8, cfg: EmbedConfig = EmbedConfig()) -> list[float]:
    """Boundary times in seconds of a (L, D) sequence at the latent frame rate, picked with the
    pipeline's novelty window, gap and threshold."""
    features = FeatureConfig()
    half, gap = cfg.novelty_frames(features.frame_rate / downsample)
    segs, _ = segment(seq, half, gap, cfg.novelty_threshold)
    return [boundary_s(s.start, downsample, features) for s in segs[1:]]


def logmel_boundaries(uri: str, downsample: int = 8, cfg: EmbedConfig = EmbedConfig()) -> list[float]:
    """The baseline: the same novelty and peak picking on standardised raw log-mel (no activity
    channel)."""
    return boundary_times(pooled_logmel(uri, downsample)[0], downsample, cfg)


def run_segment_eval(embeddings: str, truth: str, out: str, baseline: bool = True) -> dict:
    """Boundary P/R/F at 0.5 s and 0.25 s against a CSV of reference segments (id, start_s,
    end_s); write segments.json and a novelty picture of the first clip under `out`."""
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
        methods["logmel_novelty"] = {c["id"]: logmel_boundaries(c["uri"]) for c in clips}
    report: dict = {"clips": len(clips)}
    for name, est in methods.items():
        report[name] = {
            f"{w}s": {
                k: float(np.mean([boundary_scores(reference[c], est[c], w)[k] for c in est]))
                for k in ("precision", "recall", "f_measure")
            }
            for w in WINDOWS
        }
    report["pictures"] = [_novelty_picture(embeddings, clips[0], reference, estimated, out)]
    with open(os.path.join(out, "segments.json"), "w") as f:
        json.dump(report, f, indent=2)
    return report


def _novelty_picture(embeddings: str, clip: dict, reference, estimated, out: str) -> str:
    frames = read_table(embeddings, "frames", columns=["id", "novelty", "frame_rate"])
    row = next(r for r in frames.to_pylist() if r["id"] == clip["id"])
    cfg = FeatureConfig()
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


def write_report(path: str, sections: dict[str, dict]) -> str:
    """A markdown report gathering a run's figures, tables and pictures (paths relative to it)."""
    base = os.path.dirname(os.path.abspath(path))
    lines = ["# raydist run report", ""]
    for title, section in sections.items():
        lines += [
            f"## {title}",
            "",
            "```json",
            json.dumps({k: v for k, v in section.items() if k != "pictures"}, indent=2),
            "```",
            "",
        ]
        lines += [f"![{os.path.basename(p)}]({os.path.relpath(p, base)})" for p in section.get("pictures", [])] + [""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path

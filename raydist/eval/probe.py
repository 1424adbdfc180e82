"""`raydist probe`, no Ray: linear probes on clip embeddings: multinomial logistic regression (torch, L-BFGS) with
grouped k-fold cross-validation; accuracy, macro-F1 and a confusion matrix. Baseline features
(mean and std of log-mel and of MFCCs) come from the same audio, so the VAE embedding can be
judged against them."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass

import numpy as np
import pyarrow.csv as pacsv
import torch
import torchaudio

from raydist.audio import LogMel, decode
from raydist.config import FeatureConfig
from raydist.console import progress
from raydist.eval import plots
from raydist.eval.settings import run_settings
from raydist.io.store import read_table


@dataclass
class ProbeResult:
    accuracy: float
    macro_f1: float
    confusion: np.ndarray  # (classes, classes): rows true, columns predicted
    classes: list[str]

    def line(self, name: str) -> str:
        return f"{name:18s} accuracy {self.accuracy:.3f}  macro-F1 {self.macro_f1:.3f}"


def folds_for(groups: list[str], k: int) -> np.ndarray:
    """Fold index per item from a hash of its group: items of one group share a fold."""
    return np.array([int(hashlib.sha256(g.encode()).hexdigest(), 16) % k for g in groups])


def fit_logistic(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float = 1e-3, iters: int = 200) -> torch.nn.Linear:
    """Multinomial logistic regression on standardised features (L-BFGS, L2 penalty)."""
    torch.manual_seed(0)
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y).long()
    model = torch.nn.Linear(x.shape[1], n_classes)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt) + l2 * model.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return model


def fit_mlp(x: np.ndarray, y: np.ndarray, n_classes: int, hidden: int = 64, steps: int = 500) -> torch.nn.Module:
    """A one-hidden-layer MLP probe (ReLU, Adam, weight decay, full batch)."""
    torch.manual_seed(0)
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y).long()
    model = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n_classes)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return model


PROBES = {"logistic": fit_logistic, "mlp": fit_mlp}


def macro_f1(confusion: np.ndarray) -> float:
    tp = np.diag(confusion).astype(float)
    precision = tp / np.maximum(confusion.sum(0), 1)
    recall = tp / np.maximum(confusion.sum(1), 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    return float(f1.mean())


def probe(
    features: np.ndarray, labels: list[str], groups: list[str] | None = None, k: int = 5, kind: str = "logistic"
) -> ProbeResult:
    """Grouped k-fold cross-validated probe: logistic regression, or a small MLP (kind="mlp")."""
    if kind not in PROBES:
        raise ValueError(f"probe must be one of {sorted(PROBES)}, got {kind!r}")
    if len(features) != len(labels):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError(f"need at least 2 classes, got {classes}")
    y = np.array([classes.index(v) for v in labels])
    fold = folds_for(groups or [str(i) for i in range(len(labels))], k)
    confusion = np.zeros((len(classes), len(classes)), int)
    for f in range(k):
        test, train = fold == f, fold != f
        if not test.any() or not train.any():
            continue
        mu, sd = features[train].mean(0), features[train].std(0) + 1e-6
        model = PROBES[kind]((features[train] - mu) / sd, y[train], len(classes))
        with torch.no_grad():
            pred = model(torch.from_numpy((features[test] - mu) / sd).float()).argmax(1).numpy()
        np.add.at(confusion, (y[test], pred), 1)
    return ProbeResult(float(np.trace(confusion) / confusion.sum()), macro_f1(confusion), confusion, classes)


def baseline_features(uris: list[str], kind: str, cfg: FeatureConfig, show: bool = False) -> np.ndarray:
    """Mean and std over time of log-mel ("logmel") or of 20 MFCCs ("mfcc"), per file; `show`
    prints a progress line."""
    if kind not in ("logmel", "mfcc"):
        raise ValueError(f"baseline must be logmel or mfcc, got {kind!r}")
    logmel = LogMel(cfg)
    mfcc = torchaudio.transforms.MFCC(
        cfg.sample_rate, n_mfcc=20, melkwargs={"n_fft": cfg.n_fft, "hop_length": cfg.hop_length, "n_mels": cfg.n_mels}
    )
    rows, start = [], time.time()
    with torch.inference_mode():
        for i, uri in enumerate(uris, 1):
            wave = torch.from_numpy(decode(uri, cfg.sample_rate)[0])
            feats = logmel(wave) if kind == "logmel" else mfcc(wave)  # (bands, T)
            rows.append(torch.cat([feats.mean(1), feats.std(1)]).numpy())
            if show:
                rate = i / max(time.time() - start, 1e-9)
                progress(
                    f"raydist probe: {kind} baseline features {i}/{len(uris)} files, {rate:.0f} files/s, "
                    f"ETA {(len(uris) - i) / rate:.0f} s",
                    final=i == len(uris),
                )
    return np.stack(rows)


def _labels(path: str) -> dict[str, tuple[str, str]]:
    """id -> (label, group) from a CSV with id and label columns (group optional)."""
    t = pacsv.read_csv(path).to_pylist()
    if not t or not {"id", "label"} <= set(t[0]):
        raise ValueError(f"{path} needs id and label columns")
    return {str(r["id"]): (str(r["label"]), str(r.get("group") or r["id"])) for r in t if r["label"] is not None}


def run_probe(
    embeddings: str, out: str, labels: str | None = None, folds: int = 5, baseline: bool = False, mlp: bool = False
) -> dict:
    """Probe the clip embeddings; write probe.json, projection.png and confusion.png under `out`.
    Baselines use the run's own front end (its feature config, from the run manifests)."""
    features = run_settings(embeddings).features
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
            feats = baseline_features([r["uri"] for r in rows], kind, features, show=True)
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

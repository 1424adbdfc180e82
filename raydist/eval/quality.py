"""Codec quality figures, numpy/torch (no Ray): log-mel L1, multi-resolution STFT distance, SI-SDR."""

from __future__ import annotations

import numpy as np
import torch

from raydist.audio.features import LogMel
from raydist.config import FeatureConfig

STFT_SIZES = (512, 1024, 2048)


def _align(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(ref), len(est))
    return ref[:n].astype(np.float64), est[:n].astype(np.float64)


def si_sdr(ref: np.ndarray, est: np.ndarray, eps: float = 1e-12) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019)."""
    ref, est = _align(ref, est)
    ref, est = ref - ref.mean(), est - est.mean()
    target = (est @ ref) / (ref @ ref + eps) * ref
    return float(10 * np.log10((target @ target + eps) / ((est - target) @ (est - target) + eps)))


def logmel_l1(ref: np.ndarray, est: np.ndarray, cfg: FeatureConfig = FeatureConfig()) -> float:
    """Mean absolute difference of log-mel spectrograms (natural-log units)."""
    ref, est = _align(ref, est)
    lm = LogMel(cfg)
    with torch.inference_mode():
        a, b = lm(torch.from_numpy(ref).float()), lm(torch.from_numpy(est).float())
    return float((a - b).abs().mean())


def mrstft(ref: np.ndarray, est: np.ndarray, sizes: tuple[int, ...] = STFT_SIZES) -> float:
    """Multi-resolution STFT distance: mean over sizes of spectral convergence + log-magnitude L1."""
    ref, est = _align(ref, est)
    total = 0.0
    for n in sizes:
        a, b = _magnitude(ref, n), _magnitude(est, n)
        sc = torch.linalg.norm(a - b) / torch.linalg.norm(a).clamp(min=1e-12)
        mag = (torch.log(a.clamp(min=1e-7)) - torch.log(b.clamp(min=1e-7))).abs().mean()
        total += float(sc + mag)
    return total / len(sizes)


def _magnitude(x: np.ndarray, n_fft: int) -> torch.Tensor:
    win = torch.hann_window(n_fft, dtype=torch.float64)
    return torch.stft(torch.from_numpy(x), n_fft, n_fft // 4, window=win, return_complex=True).abs()


def compare(ref: np.ndarray, est: np.ndarray) -> dict[str, float]:
    return {"logmel_l1": logmel_l1(ref, est), "mrstft": mrstft(ref, est), "si_sdr": si_sdr(ref, est)}


def _key(clip_id: str) -> str:
    import posixpath

    return posixpath.splitext(clip_id)[0]


def evaluate_pairs(originals: list[str], decoded: list[str], sample_rate: int = 16000) -> dict:
    """Match originals and decoded files by id (extension dropped), compare each pair at
    `sample_rate` mono, and return per-clip figures plus corpus means."""
    from raydist.audio import decode
    from raydist.io.inputs import resolve_inputs

    ref = {_key(r["id"]): r["uri"] for r in resolve_inputs(originals).table.to_pylist()}
    est = {_key(r["id"]): r["uri"] for r in resolve_inputs(decoded).table.to_pylist()}
    common = sorted(set(ref) & set(est))
    if not common:
        raise ValueError(f"no decoded file matches an original by name (e.g. {sorted(ref)[:3]} vs {sorted(est)[:3]})")
    clips = []
    for k in common:
        a, _ = decode(ref[k], sample_rate)
        b, _ = decode(est[k], sample_rate)
        clips.append({"id": k, **compare(a, b)})
    means = {m: float(np.mean([c[m] for c in clips])) for m in ("logmel_l1", "mrstft", "si_sdr")}
    return {"clips": clips, "mean": means, "matched": len(common), "unmatched": sorted(set(ref) ^ set(est))}


def format_table(report: dict) -> str:
    lines = [f"{'clip':30s} {'logmel_l1':>10s} {'mrstft':>8s} {'si_sdr':>8s}"]
    for c in report["clips"]:
        lines.append(f"{c['id'][:30]:30s} {c['logmel_l1']:10.3f} {c['mrstft']:8.3f} {c['si_sdr']:8.2f}")
    m = report["mean"]
    lines.append(
        f"{'mean (' + str(report['matched']) + ' clips)':30s} {m['logmel_l1']:10.3f} {m['mrstft']:8.3f} {m['si_sdr']:8.2f}"
    )
    if "bitrate" in report:
        b = report["bitrate"]
        lines.append(
            f"bitrate: {b['payload_kbps']:.2f} kbps payload, {b['file_kbps']:.2f} kbps on disk; "
            f"ratio {b['ratio_vs_source']:.1f}x vs source files, {b['ratio_vs_pcm16']:.1f}x vs 16-bit PCM"
        )
    return "\n".join(lines)

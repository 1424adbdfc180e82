"""Latent-space health figures reported each epoch."""

from __future__ import annotations

import torch


def active_dims(kl_per_dim: torch.Tensor, threshold: float = 0.01) -> int:
    """Latent dims whose mean KL per latent frame exceeds `threshold` nats (the rest collapsed
    to the prior and carry no information)."""
    return int((kl_per_dim > threshold).sum())


def pca_components(means: torch.Tensor, fractions: tuple[float, ...] = (0.9, 0.95, 0.99)) -> dict[str, int]:
    """How many principal components of latent means (N, D) carry each fraction of the variance
    (the fidelity figure RAVE reports)."""
    x = means.double() - means.double().mean(0)
    var = torch.linalg.eigvalsh(x.T @ x / max(1, len(x) - 1)).flip(0).clamp(min=0)
    cum = var.cumsum(0) / var.sum().clamp(min=1e-12)
    return {f"pca{round(f * 100)}": int((cum < f - 1e-9).sum()) + 1 for f in fractions}

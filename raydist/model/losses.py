"""ELBO pieces. Terms are named; their weights are keyed by the same names.

Units: every term is nats (or squared error) per mel frame, summed over channels, so
`recon + beta * kl` is a per-frame negative ELBO (up to the Gaussian likelihood's constant).
"""

from __future__ import annotations

import torch


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mean + exp(logvar / 2) * eps, eps ~ N(0, I): differentiable in mean and logvar."""
    return mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(N(mean, exp(logvar)) || N(0, 1)) in nats."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)


def kl_per_dim(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """(B, D, L) -> (D,): mean KL per latent frame for each latent dimension."""
    return gaussian_kl(mean, logvar).mean(dim=(0, 2))


def elbo_terms(
    recon: torch.Tensor, target: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, free_bits: float = 0.0
) -> dict[str, torch.Tensor]:
    """Named loss terms for a batch.

    recon, target: (B, n_mels, T) normalised log-mel; mean, logvar: (B, D, L).
    recon: squared error summed over mel bands, mean over frames.
    kl: KL summed over latent dims and frames, per mel frame.
    kl_penalty: the same with each dim's KL clamped below at `free_bits` nats per latent frame
    (free bits, Kingma et al. 2016): the term beta multiplies.
    """
    frames_ratio = mean.shape[-1] / target.shape[-1]  # latent frames per mel frame
    per_dim = kl_per_dim(mean, logvar)  # (D,)
    return {
        "recon": (recon - target).pow(2).sum(1).mean(),
        "kl": per_dim.sum() * frames_ratio,
        "kl_penalty": per_dim.clamp(min=free_bits).sum() * frames_ratio,
    }


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE (NT-Xent without same-view negatives; CLIP's form) between two views:
    a[i] and b[i] embed two views of clip i, (B, P) each. Cross-entropy of picking b[i] among all
    b for a[i] (and a[i] among all a for b[i]) from cosine similarities / temperature; log(B)
    when the views carry no information, 0 when each pair is certain."""
    a, b = torch.nn.functional.normalize(a, dim=1), torch.nn.functional.normalize(b, dim=1)
    logits = a @ b.T / temperature
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (
        torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)
    )


def beta_at(step: int, beta: float, warmup_steps: int) -> float:
    """KL warm-up: beta ramps linearly from 0 to `beta` over `warmup_steps`."""
    return beta if warmup_steps <= 0 else beta * min(1.0, step / warmup_steps)


def total_loss(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    return sum(weights[k] * terms[k] for k in weights)  # type: ignore[return-value]

"""Two views of every training window for the invariance term (plain torch, no Ray).

Each view is a random crop of `frames` mel frames that contains the window's loudest frame (so a
short clip padded with silence never yields a silent view), with its own random gain (+-6 dB) and
a BYOL-A style mix: a share lambda ~ U(0, max_mix) of another window's crop added in the power
domain, so the embedding learns to ignore level and background and keep what the source is."""

from __future__ import annotations

import math

import torch

DB = math.log(10.0) / 10.0  # 1 dB of power in natural-log units


def crop_starts(energy: torch.Tensor, frames: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, T) frame energies -> (B,) crop starts, uniform over the crops of `frames` that hold the
    loudest frame."""
    t = energy.shape[-1]
    peak = energy.argmax(-1)
    low = (peak - frames + 1).clamp(min=0)
    high = peak.clamp(max=t - frames)
    u = torch.rand(len(energy), generator=generator, device=energy.device)
    return low + (u * (high - low + 1).float()).long().clamp(max=high - low)


def one_view(
    x: torch.Tensor, frames: int, max_gain_db: float, max_mix: float, generator: torch.Generator | None
) -> torch.Tensor:
    b = len(x)
    starts = crop_starts(x.mean(1), frames, generator)
    idx = starts[:, None] + torch.arange(frames, device=x.device)  # (B, frames)
    crop = torch.gather(x, 2, idx[:, None, :].expand(-1, x.shape[1], -1))
    rand = lambda: torch.rand(b, 1, 1, generator=generator, device=x.device)  # noqa: E731
    crop = crop + (2 * rand() - 1) * max_gain_db * DB
    lam = rand() * max_mix
    other = crop.roll(1, dims=0)  # another window's crop
    return torch.logaddexp(crop + torch.log1p(-lam), other + torch.log(lam))  # log(0) = -inf: no mix


def view_pairs(
    x: torch.Tensor,
    frames: int,
    max_gain_db: float = 6.0,
    max_mix: float = 0.4,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(B, n_mels, T) log-mel windows -> (2B, n_mels, frames): rows i and B + i are two views of
    window i."""
    frames = min(frames, x.shape[-1])
    return torch.cat([one_view(x, frames, max_gain_db, max_mix, generator) for _ in range(2)])

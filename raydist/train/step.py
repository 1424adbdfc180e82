"""The training step, plain torch (no Ray): one optimiser update of the VAE on a batch of log-mel
windows. The Ray Train loop (`loop.py`) and the in-process trainer (`local.py`) both call it, so
every trained checkpoint comes from the same loss, KL schedule, clipping and optimiser."""

from __future__ import annotations

import torch

from raydist.config import LossConfig, TrainConfig
from raydist.model.losses import beta_at, elbo_terms, total_loss
from raydist.model.vae import AudioVAE


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def train_step(
    model: AudioVAE,
    x: torch.Tensor,
    opt: torch.optim.Optimizer,
    step: int,
    cfg: TrainConfig,
    loss_cfg: LossConfig,
    forward: torch.nn.Module | None = None,
    bf16: bool = False,
) -> dict[str, torch.Tensor]:
    """One update on x (B, n_mels, frames): ELBO terms with free bits, beta warmed up by `step`,
    gradient norm clipped at cfg.grad_clip. `forward` is the module to call (the DDP wrapper under
    Ray Train; `model` itself otherwise); `bf16` runs the forward pass in bfloat16 autocast
    (CUDA). Returns the loss terms plus "loss", detached."""
    forward = forward or model
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = forward(x)
    terms = elbo_terms(
        out["recon"].float(), model.normalize(x), out["mean"].float(), out["logvar"].float(), loss_cfg.free_bits
    )
    loss = total_loss(terms, {"recon": 1.0, "kl_penalty": beta_at(step, loss_cfg.beta, loss_cfg.kl_warmup_steps)})
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    return {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}}

"""The training step, plain torch (no Ray): one optimiser update of the VAE on a batch of log-mel
windows. The Ray Train loop (`loop.py`) and the in-process trainer (`local.py`) both call it, so
every trained checkpoint comes from the same loss, KL schedule, clipping and optimiser."""

from __future__ import annotations

from dataclasses import replace

import torch

from raydist.config import LossConfig, ModelConfig, TrainConfig
from raydist.model.losses import beta_at, elbo_terms, info_nce, total_loss
from raydist.model.vae import AudioVAE
from raydist.train.views import view_pairs


def build_vae(model_cfg: ModelConfig, loss_cfg: LossConfig) -> AudioVAE:
    """The model to train: without a projection head when the objective has no invariance term
    (DDP requires every parameter to take part in the loss)."""
    return AudioVAE(model_cfg if loss_cfg.contrast > 0 else replace(model_cfg, proj_dim=0))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def view_frames(model: AudioVAE, loss_cfg: LossConfig, frame_rate: float) -> int:
    """Mel frames per augmented crop: view_s rounded to whole latent frames."""
    d = model.cfg.downsample
    return max(d, round(loss_cfg.view_s * frame_rate / d) * d)


def train_step(
    model: AudioVAE,
    x: torch.Tensor,
    opt: torch.optim.Optimizer,
    step: int,
    cfg: TrainConfig,
    loss_cfg: LossConfig,
    frame_rate: float,
    forward: torch.nn.Module | None = None,
    bf16: bool = False,
) -> dict[str, torch.Tensor]:
    """One update on x (B, n_mels, frames): ELBO terms with free bits, beta warmed up by `step`,
    plus the invariance term on two augmented crops per window when loss_cfg.contrast > 0
    (`frame_rate`: mel frames per second, to size the crops);
    gradient norm clipped at cfg.grad_clip. `forward` is the module to call (the DDP wrapper under
    Ray Train; `model` itself otherwise); `bf16` runs the forward pass in bfloat16 autocast
    (CUDA). Returns the loss terms plus "loss", detached."""
    forward = forward or model
    contrast = loss_cfg.contrast > 0
    views = view_pairs(x, view_frames(model, loss_cfg, frame_rate)) if contrast else None
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = forward(x, views)
    terms = elbo_terms(
        out["recon"].float(), model.normalize(x), out["mean"].float(), out["logvar"].float(), loss_cfg.free_bits
    )
    weights = {"recon": 1.0, "kl_penalty": beta_at(step, loss_cfg.beta, loss_cfg.kl_warmup_steps)}
    if contrast:
        a, b = out["proj"].float().chunk(2)
        terms["contrast"] = info_nce(a, b, loss_cfg.temperature)
        weights["contrast"] = loss_cfg.contrast
    loss = total_loss(terms, weights)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    return {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}}

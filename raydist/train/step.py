"""The training step, plain torch (no Ray): one optimiser update of the VAE on a batch of log-mel
windows. The Ray Train loop (`loop.py`) and the in-process trainer (`local.py`) both call it, so
every trained checkpoint comes from the same loss, KL schedule, clipping and optimiser."""

from __future__ import annotations

from dataclasses import replace

import torch

from raydist.config import LossConfig, ModelConfig, TrainConfig, VocoderConfig
from raydist.model.losses import beta_at, elbo_terms, info_nce, total_loss
from raydist.model.vae import AudioVAE
from raydist.model.vocoder import (
    Vocoder,
    discriminator_loss,
    generator_terms,
    quantize_like_codec,
    vocoder_terms,
)
from raydist.train.views import view_pairs


def build_vae(model_cfg: ModelConfig, loss_cfg: LossConfig) -> AudioVAE:
    """The model to train: without a projection head when the objective has no invariance term
    (DDP requires every parameter to take part in the loss)."""
    return AudioVAE(model_cfg if loss_cfg.contrast > 0 else replace(model_cfg, proj_dim=0))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def update(loss: torch.Tensor, opt: torch.optim.Optimizer, module: torch.nn.Module, grad_clip: float) -> None:
    """One optimiser step on `loss`: gradients of `module` clipped to norm `grad_clip`."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
    opt.step()


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
    update(loss, opt, model, cfg.grad_clip)
    return {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}}


def crop_waves(wave: torch.Tensor, samples: int, hop: int) -> torch.Tensor:
    """(B, N) -> (B, samples): one random crop per row starting on a hop boundary (the whole row
    when it is not longer)."""
    if wave.shape[-1] <= samples:
        return wave
    starts = torch.randint(0, (wave.shape[-1] - samples) // hop + 1, (len(wave),)) * hop
    idx = starts[:, None].to(wave.device) + torch.arange(samples, device=wave.device)
    return wave.gather(1, idx)


@torch.no_grad()
def codec_logmel(vae: AudioVAE, logmel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What the codec hands the vocoder for a batch of (B, n_mels, T) log-mel: the latent means
    quantised as the codec stores them, and the VAE's log-mel decoded from them."""
    mean, _ = vae.encode(logmel)
    z = quantize_like_codec(mean)
    return vae.decode(z, logmel.shape[-1]), z


def vocoder_step(
    vocoder: Vocoder,
    vae: AudioVAE,
    logmel: torch.nn.Module,
    wave: torch.Tensor,
    opt: torch.optim.Optimizer,
    cfg: TrainConfig,
    vcfg: VocoderConfig,
    forward: torch.nn.Module | None = None,
    bf16: bool = False,
    disc: torch.nn.Module | None = None,
    disc_opt: torch.optim.Optimizer | None = None,
    disc_forward: torch.nn.Module | None = None,
) -> dict[str, torch.Tensor]:
    """One update of the vocoder on (B, N) waveforms: a random vcfg.segment_s crop of each, its
    log-mel through the frozen VAE and the codec's quantiser, the vocoder's waveform scored by
    log-mel L1 and the multi-resolution STFT loss; gradient norm clipped at cfg.grad_clip.
    With a discriminator (vcfg.adversarial > 0), it takes one hinge step first, then the
    vocoder's loss adds the GAN and feature-matching terms. `forward`, `disc_forward` (the DDP
    wrappers under Ray Train) and `bf16` as in `train_step`."""
    forward = forward or vocoder
    hop = vocoder.hop
    samples = max(vae.cfg.downsample, round(vcfg.segment_s * vocoder.sample_rate / hop)) * hop
    target = crop_waves(wave, min(samples, wave.shape[-1] // hop * hop), hop)
    mel_hat, z = codec_logmel(vae, logmel(target))
    with torch.autocast(device_type=wave.device.type, dtype=torch.bfloat16, enabled=bf16):
        pred = forward(mel_hat, z)
    n = min(pred.shape[-1], target.shape[-1])
    pred, target = pred[..., :n].float(), target[..., :n]
    terms = vocoder_terms(pred, target, logmel)
    weights = {"mel": vcfg.mel_weight, "stft": vcfg.stft_weight}
    if disc is not None and disc_opt is not None and vcfg.adversarial > 0:
        d_loss = discriminator_loss(disc_forward or disc, target, pred)
        update(d_loss, disc_opt, disc, cfg.grad_clip)
        disc.requires_grad_(False)  # the vocoder's step: gradients reach pred, not the discriminator
        terms.update(generator_terms(disc, target, pred), disc=d_loss.detach())
        disc.requires_grad_(True)
        weights.update(adversarial=vcfg.adversarial, feature_matching=2 * vcfg.adversarial)
    loss = total_loss(terms, weights)
    update(loss, opt, vocoder, cfg.grad_clip)
    return {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}}

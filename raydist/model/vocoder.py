"""The learned waveform decoder (Vocos-style, Siuzdak 2023), plain torch (no Ray): the VAE's
decoded log-mel, with the latents it came from, -> a ConvNeXt backbone at the mel frame rate ->
per-frame STFT magnitude and phase -> inverse STFT. Every layer runs at 100 frames per second
(no upsampling stack), so it trains and runs fast on CPU.

    voc = Vocoder(VocoderConfig(), features, model_cfg)
    wave = voc(logmel, z)            # (B, n_mels, T), (B, D, L) -> (B, (T - 1) * hop)

Losses (`vocoder_terms`): L1 between log-mel spectrograms (the model's front end) and a
multi-resolution STFT loss (spectral convergence + log-magnitude L1 at three sizes). Optionally
(`VocoderConfig.adversarial` > 0) a multi-resolution spectrogram discriminator (`Discriminator`,
UnivNet/Vocos MRD) adds hinge GAN and feature-matching terms (`generator_terms`,
`discriminator_loss`): spectral losses alone leave phase to regression, which buzzes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from raydist.config import FeatureConfig, ModelConfig, VocoderConfig

STFT_LOSS_SIZES = ((512, 128), (1024, 256), (256, 64))  # (n_fft, hop) of the multi-resolution STFT loss
LOG_MAG_MAX = 10.0  # exp(10) bounds the predicted magnitude: no overflow early in training


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (7) -> LayerNorm -> pointwise MLP (x3) -> layer scale, residual."""

    def __init__(self, dim: int, layer_scale: float):
        super().__init__()
        self.dw = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 3 * dim), nn.GELU(), nn.Linear(3 * dim, dim))
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, dim, T)
        y = self.mlp(self.norm(self.dw(x).transpose(1, 2))) * self.gamma
        return x + y.transpose(1, 2)


class Vocoder(nn.Module):
    def __init__(self, cfg: VocoderConfig, features: FeatureConfig, model_cfg: ModelConfig):
        super().__init__()
        self.cfg, self.hop, self.downsample = cfg, features.hop_length, model_cfg.downsample
        self.sample_rate = features.sample_rate
        self.input_mean, self.input_std = model_cfg.input_mean, model_cfg.input_std
        c_in = model_cfg.n_mels + (model_cfg.latent_dim if cfg.use_latents else 0)
        self.embed = nn.Conv1d(c_in, cfg.dim, 7, padding=3)
        self.norm_in = nn.LayerNorm(cfg.dim)
        self.blocks = nn.ModuleList(ConvNeXtBlock(cfg.dim, 1.0 / cfg.layers) for _ in range(cfg.layers))
        self.norm_out = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.n_fft + 2)  # log-magnitude and phase of n_fft/2+1 bins
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)

    def forward(self, logmel: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n_mels, T) log-mel (and (B, D, L) latents when cfg.use_latents) -> (B, (T-1)*hop)."""
        x = (logmel - self.input_mean) / self.input_std
        if self.cfg.use_latents:
            if z is None:
                raise ValueError("this vocoder is conditioned on latents: pass z")
            up = z.repeat_interleave(self.downsample, dim=-1)[..., : x.shape[-1]]
            x = torch.cat([x, F.pad(up, (0, x.shape[-1] - up.shape[-1]))], dim=1)
        h = self.norm_in(self.embed(x).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            h = block(h)
        logmag, phase = self.head(self.norm_out(h.transpose(1, 2))).float().transpose(1, 2).chunk(2, dim=1)
        spec = torch.polar(torch.exp(logmag.clamp(max=LOG_MAG_MAX)), phase)
        n = (x.shape[-1] - 1) * self.hop
        return torch.istft(spec, self.cfg.n_fft, self.hop, self.cfg.n_fft, self.window, center=True, length=n)


def _magnitude(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    win = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    z = torch.view_as_real(torch.stft(x, n_fft, hop, window=win, return_complex=True))
    return (z.square().sum(-1) + 1e-9).sqrt()


def stft_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Multi-resolution STFT loss: mean over STFT_LOSS_SIZES of spectral convergence
    (||S - S'||_F / ||S||_F) + mean |log S - log S'|. 0 for identical signals."""
    total = pred.new_zeros(())
    for n_fft, hop in STFT_LOSS_SIZES:
        a, b = _magnitude(target, n_fft, hop), _magnitude(pred, n_fft, hop)
        sc = torch.linalg.norm(a - b) / torch.linalg.norm(a).clamp(min=1e-7)
        total = total + sc + (torch.log(a.clamp(min=1e-5)) - torch.log(b.clamp(min=1e-5))).abs().mean()
    return total / len(STFT_LOSS_SIZES)


def vocoder_terms(pred: torch.Tensor, target: torch.Tensor, logmel) -> dict[str, torch.Tensor]:
    """Named loss terms of a batch of (B, N) waveforms; `logmel` is the model's LogMel front end."""
    return {"mel": (logmel(pred) - logmel(target)).abs().mean(), "stft": stft_loss(pred, target)}


def quantize_like_codec(mean: torch.Tensor, levels: int = 127) -> torch.Tensor:
    """(B, D, L) latent means as the codec returns them: int8 codes with a float16 per-dimension
    scale (max |mean| over each clip's frames), dequantised. `raydist.codec.format.quantize` in torch."""
    scale = mean.abs().amax(-1, keepdim=True).half().float()
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.clamp(torch.round(mean / safe * levels), -levels, levels) / levels * scale


class _SpecDisc(nn.Module):
    """One resolution of the MRD: log|STFT| as an image -> 2-D conv stack -> a logit map."""

    def __init__(self, n_fft: int, hop: int, ch: int = 32):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.convs = nn.ModuleList(
            [
                nn.Conv2d(1, ch, (3, 9), padding=(1, 4)),
                nn.Conv2d(ch, ch, (3, 9), stride=(1, 2), padding=(1, 4)),
                nn.Conv2d(ch, ch, (3, 9), stride=(1, 2), padding=(1, 4)),
                nn.Conv2d(ch, ch, (3, 3), padding=(1, 1)),
            ]
        )
        self.out = nn.Conv2d(ch, 1, (3, 3), padding=(1, 1))

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = torch.log(_magnitude(wave.float(), self.n_fft, self.hop).clamp(min=1e-5))[:, None].transpose(2, 3)
        feats = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
            feats.append(x)
        return self.out(x), feats


class Discriminator(nn.Module):
    """Multi-resolution spectrogram discriminator: one `_SpecDisc` per STFT_LOSS_SIZES entry."""

    def __init__(self):
        super().__init__()
        self.discs = nn.ModuleList(_SpecDisc(n, h) for n, h in STFT_LOSS_SIZES)

    def forward(self, wave: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [d(wave) for d in self.discs]


def discriminator_loss(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the discriminator: mean relu(1 - D(real)) + relu(1 + D(fake)) over resolutions."""
    total, b = real.new_zeros(()), len(real)
    for logits, _ in disc(torch.cat([real, fake.detach()])):  # one pass: DDP sees one forward
        total = total + F.relu(1 - logits[:b]).mean() + F.relu(1 + logits[b:]).mean()
    return total / len(STFT_LOSS_SIZES)


def generator_terms(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
    """The generator's hinge GAN term (mean relu(1 - D(fake))) and feature matching (L1 between
    the discriminator's feature maps of real and generated audio, real detached)."""
    adv, fm = fake.new_zeros(()), fake.new_zeros(())
    with torch.no_grad():
        real_out = disc(real)
    for (f, ff), (_, rf) in zip(disc(fake), real_out):
        adv = adv + F.relu(1 - f).mean()
        fm = fm + sum((a - b).abs().mean() for a, b in zip(ff, rf)) / len(ff)
    return {"adversarial": adv / len(STFT_LOSS_SIZES), "feature_matching": fm / len(STFT_LOSS_SIZES)}

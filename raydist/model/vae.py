"""The audio VAE: log-mel (B, n_mels, T) -> latent mean/log-variance (B, latent_dim, L) with
L = ceil(T / 2**n_down) -> decoded log-mel (B, n_mels, T). Fully convolutional in time."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from raydist.config import ModelConfig
from raydist.model.blocks import down, res_stack, up
from raydist.model.losses import reparameterize

LOGVAR_BOUND = 6.0


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(cfg.n_mels, cfg.hidden, 3, padding=1)]
        for _ in range(cfg.n_down):
            layers += [*res_stack(cfg.hidden, cfg.res_blocks), down(cfg.hidden)]
        layers += [*res_stack(cfg.hidden, cfg.res_blocks), nn.GELU(), nn.Conv1d(cfg.hidden, 2 * cfg.latent_dim, 1)]
        self.net = nn.Sequential(*layers)
        self.stem = 1 + cfg.res_blocks  # input conv + first residual stage: the full mel frame rate

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar, _ = self.stages(x)
        return mean, logvar

    def stages(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, n_mels, T) -> mean, logvar (B, latent, L) and the first stage's output (B, hidden, T):
        features at the mel frame rate, before any downsampling, that keep spectral detail the
        bottleneck lets go (the clip embedding pools them)."""
        early = self.net[: self.stem](x)
        mean, raw = self.net[self.stem :](early).chunk(2, dim=1)  # (B, latent, L) each
        # soft bound: posterior std stays in (e^-3, e^3); an unbounded log-variance early in
        # training (beta ~ 0 during warm-up) can blow the sample z up and the loss with it
        return mean, LOGVAR_BOUND * torch.tanh(raw / LOGVAR_BOUND), early


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(cfg.latent_dim, cfg.hidden, 3, padding=1)]
        for _ in range(cfg.n_down):
            layers += [*res_stack(cfg.hidden, cfg.res_blocks), up(cfg.hidden)]
        layers += [*res_stack(cfg.hidden, cfg.res_blocks), nn.GELU(), nn.Conv1d(cfg.hidden, cfg.n_mels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)  # (B, n_mels, 2**n_down * L), normalised log-mel


def pool(mean: torch.Tensor) -> torch.Tensor:
    """(B, D, L) latent means -> (B, 2 D) [mean over time, std over time]: the latent part of the
    clip embedding, which the invariance term trains (`embedding.features.scene_embedding`
    without first-stage features is the same for one clip, in numpy)."""
    return torch.cat([mean.mean(-1), mean.std(-1, unbiased=False)], dim=1)


class AudioVAE(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        # projection head of the invariance term: pooled clip embedding -> proj_dim (training only)
        self.head = (
            nn.Sequential(nn.Linear(2 * cfg.latent_dim, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.proj_dim))
            if cfg.proj_dim
            else None
        )

    def normalize(self, logmel: torch.Tensor) -> torch.Tensor:
        return (logmel - self.cfg.input_mean) / self.cfg.input_std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.cfg.input_std + self.cfg.input_mean

    def latent_frames(self, mel_frames: int) -> int:
        return -(-mel_frames // self.cfg.downsample)

    def _encoder_input(self, logmel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) log-mel -> normalised, padded to whole latent frames (B, n_mels, L * downsample)."""
        x = self.normalize(logmel)
        pad = self.latent_frames(x.shape[-1]) * self.cfg.downsample - x.shape[-1]
        return F.pad(x, (0, pad))  # zeros = the normalisation mean

    def encode(self, logmel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n_mels, T) log-mel -> mean, logvar (B, latent_dim, ceil(T / downsample))."""
        return self.encoder(self._encoder_input(logmel))

    def encode_early(self, logmel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`encode`, plus the encoder's first stage averaged over each latent frame's mel frames:
        (B, hidden, L)."""
        mean, logvar, early = self.encoder.stages(self._encoder_input(logmel))
        return mean, logvar, early.reshape(*early.shape[:2], mean.shape[-1], self.cfg.downsample).mean(-1)

    def decode(self, z: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        """(B, latent_dim, L) -> (B, n_mels, frames or downsample * L) log-mel."""
        out = self.denormalize(self.decoder(z))
        return out if frames is None else out[..., :frames]

    def forward(self, logmel: torch.Tensor, views: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """ELBO pieces for (B, n_mels, T) log-mel; with `views` (V, n_mels, T'), also "proj":
        the projection head on each view's pooled latent means (one call, so DDP sees one pass)."""
        mean, logvar = self.encode(logmel)
        z = reparameterize(mean, logvar)
        recon = self.decoder(z)[..., : logmel.shape[-1]]  # normalised
        out = {"mean": mean, "logvar": logvar, "z": z, "recon": recon}
        if views is not None:
            if self.head is None:
                raise ValueError("this model has no projection head (proj_dim=0): train it with contrast=0")
            out["proj"] = self.head(pool(self.encode(views)[0]))
        return out


def receptive_field(model: AudioVAE) -> int:
    """How many latent frames on either side of a latent frame influence it (measured by
    gradient, so it stays right when the architecture changes)."""
    d, n = model.cfg.downsample, 64
    with torch.inference_mode(False), torch.enable_grad():
        x = torch.zeros(1, model.cfg.n_mels, n * d, device=next(model.parameters()).device, requires_grad=True)
        mean, _ = model.encode(x)
        mean[0, :, n // 2].sum().backward()
    touched = (x.grad[0].abs().sum(0) > 0).nonzero().flatten()
    reach = max(n // 2 * d - int(touched[0]), int(touched[-1]) - n // 2 * d)
    return -(-reach // d) + 1

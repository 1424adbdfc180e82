"""The HEAR 2021 common API on a raydist checkpoint.

    from raydist import hear
    model = hear.load_model("runs/a/model.pt")
    emb, ts = hear.get_timestamp_embeddings(audio, model)   # audio: (n_sounds, n_samples) at model.sample_rate
    scene = hear.get_scene_embeddings(audio, model)

Timestamps are the centres of the latent frames in milliseconds, computed in float64 (no drift on
long audio), only those at or before the end of the audio. Long audio is encoded in chunks, so 20
minutes fit in bounded memory.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from raydist.embedding.encode import encode_many, timestamps_s
from raydist.embedding.features import scene_embedding
from raydist.model.checkpoint import LoadedModel
from raydist.model.checkpoint import load_model as _load


class HearModel(nn.Module):
    """A torch Module with the attributes the HEAR API requires."""

    def __init__(self, loaded: LoadedModel):
        super().__init__()
        self.loaded = loaded
        self.vae = loaded.vae
        self.sample_rate = loaded.features.sample_rate
        self.timestamp_embedding_size = loaded.vae.cfg.latent_dim
        self.scene_embedding_size = 2 * (loaded.vae.cfg.latent_dim + loaded.vae.cfg.hidden)


def load_model(model_file_path: str = "", **kwargs) -> HearModel:
    if not model_file_path:
        raise ValueError("raydist's HEAR model needs a checkpoint path (model.pt or its directory)")
    return HearModel(_load(model_file_path, **kwargs))


def _check(audio: torch.Tensor) -> None:
    if audio.ndim != 2:
        raise ValueError(f"audio must be (n_sounds, n_samples), got shape {tuple(audio.shape)}")


def get_timestamp_embeddings(audio: torch.Tensor, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_sounds, n_samples) -> embeddings (n_sounds, n_timestamps, D) float32 and timestamps
    (n_sounds, n_timestamps) in milliseconds."""
    _check(audio)
    m = model.loaded
    waves = [w.detach().to(torch.float32).cpu().numpy() for w in audio]
    latents = encode_many(m, waves)
    duration_ms = audio.shape[1] / model.sample_rate * 1000
    times = timestamps_s(m, len(latents[0].mean)) * 1000
    keep = int(np.searchsorted(times, duration_ms, side="right"))  # none past the end
    emb = torch.from_numpy(np.stack([lat.mean[:keep] for lat in latents])).float()
    ts = torch.from_numpy(np.tile(times[:keep], (len(waves), 1))).float()
    return emb, ts


def get_scene_embeddings(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    """(n_sounds, n_samples) -> (n_sounds, 2 D + 2 H) float32: the clip embedding of `raydist embed`
    (mean and std over time of the latents, then of the encoder's first-stage features)."""
    _check(audio)
    latents = encode_many(model.loaded, [w.detach().to(torch.float32).cpu().numpy() for w in audio])
    return torch.from_numpy(np.stack([scene_embedding(lat.mean, lat.early) for lat in latents])).float()

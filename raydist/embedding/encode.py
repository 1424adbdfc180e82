"""Waveform -> latent sequence, and the time of each latent frame. Plain torch (no Ray): the Ray
pipeline, the HEAR API, the codec and the benchmarks all call these.

Besides the latents, each latent frame gets the encoder's first-stage features averaged over it
(`early`: full-rate features that keep the fine spectral detail the bottleneck lets go; the clip
embedding pools them) and two plain measures of the log-mel it was encoded from: its energy
(activity) and its first cepstral coefficients (the spectral envelope, as MFCCs describe it),
which source segmentation uses beside the latents.

Long audio is encoded in chunks of latent frames with `receptive_field` frames of context on each
side, so results equal whole-file encoding; clips of equal length are stacked into one batch.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from raydist.audio.errors import TooShortError
from raydist.audio.features import num_frames
from raydist.embedding.features import cepstral_basis
from raydist.model.checkpoint import LoadedModel
from raydist.model.vae import AudioVAE, receptive_field

CHUNK_LATENTS = 750  # latent frames encoded at once (60 s at 12.5 fps): bounds memory
FIELDS = ("mean", "logvar", "energy", "cepstra", "early", "mel_energy", "bands")


@dataclass
class Latents:
    mean: np.ndarray  # (L, D) float32
    logvar: np.ndarray  # (L, D) float32
    energy: np.ndarray  # (L,) mean log-mel per latent frame: an activity measure
    cepstra: np.ndarray  # (L, N_CEPSTRA) DCT-II (ortho) coefficients c1.. of the mean log-mel per latent frame
    early: np.ndarray  # (L, hidden) the encoder's first stage (mel frame rate) averaged over each latent frame
    mel_energy: np.ndarray | None = None  # (T,) mean log-mel per mel frame: where a source's sound begins
    bands: np.ndarray | None = None  # (L, n_mels) log-mel averaged over each latent frame (energy: their mean)


@lru_cache(maxsize=8)
def _context(vae: AudioVAE) -> int:
    return receptive_field(vae)


def min_samples(m: LoadedModel) -> int:
    """Shortest clip that fills one latent frame."""
    return m.vae.cfg.downsample * m.features.hop_length


def timestamps_s(m: LoadedModel, n_latents: int) -> np.ndarray:
    """Centre time in seconds of each latent frame (float64: no drift on long audio)."""
    d, hop, sr = m.vae.cfg.downsample, m.features.hop_length, m.features.sample_rate
    return (np.arange(n_latents, dtype=np.float64) * d + (d - 1) / 2) * hop / sr


@lru_cache(maxsize=4)
def _dct(n_mels: int) -> torch.Tensor:
    return torch.from_numpy(cepstral_basis(n_mels))  # (n_mels, N_CEPSTRA): c1..


def _pool(logmel: torch.Tensor, d: int, n_latents: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, n_mels, T) log-mel -> energy (B, L), cepstra (B, L, N_CEPSTRA) and bands (B, L, n_mels)
    of the log-mel averaged over each latent frame's d mel frames (the last frame repeated to
    fill the end)."""
    x = torch.nn.functional.pad(logmel, (0, n_latents * d - logmel.shape[-1]), mode="replicate")
    bands = x.reshape(*x.shape[:2], n_latents, d).mean(-1).transpose(1, 2)  # (B, L, n_mels)
    return bands.mean(-1), bands @ _dct(bands.shape[-1]).to(bands), bands


def _device(m: LoadedModel) -> torch.device:
    return next(m.vae.parameters()).device


@torch.inference_mode()
def encode_equal(m: LoadedModel, waves: torch.Tensor) -> list[Latents]:
    """Encode a (B, N) batch of equal-length waveforms in one forward pass."""
    logmel = m.logmel(waves.to(_device(m), non_blocking=True))  # (B, n_mels, T)
    mean, logvar, early = m.vae.encode_early(logmel)  # (B, D, L), (B, D, L), (B, hidden, L)
    energy, cepstra, bands = _pool(logmel, m.vae.cfg.downsample, mean.shape[-1])
    per_clip = (
        mean.transpose(1, 2),
        logvar.transpose(1, 2),
        energy,
        cepstra,
        early.transpose(1, 2),
        logmel.mean(1),
        bands,
    )
    return [Latents(*(t[i].float().cpu().numpy() for t in per_clip)) for i in range(len(waves))]


@torch.inference_mode()
def encode_long(m: LoadedModel, wave: torch.Tensor, chunk: int = CHUNK_LATENTS) -> Latents:
    """Encode one long 1-D waveform chunk by chunk; equals encode_equal on the whole."""
    d, ctx = m.vae.cfg.downsample, _context(m.vae)
    wave = wave.to(_device(m))
    n_mel = num_frames(wave.shape[-1], m.features)
    n_lat = m.vae.latent_frames(n_mel)
    parts: list[Latents] = []
    for j0 in range(0, n_lat, chunk):
        j1 = min(n_lat, j0 + chunk)
        a, b = max(0, j0 - ctx), min(n_lat, j1 + ctx)
        logmel = m.logmel.frames(wave, a * d, min(n_mel, b * d))[None]  # (1, n_mels, <= (b - a) d)
        mean, logvar, early = m.vae.encode_early(logmel)
        energy, cepstra, bands = _pool(logmel, d, mean.shape[-1])
        keep, mel = slice(j0 - a, j1 - a), slice((j0 - a) * d, (j1 - a) * d)
        pieces = (mean[0, :, keep].T, logvar[0, :, keep].T, energy[0, keep], cepstra[0, keep], early[0, :, keep].T)
        pieces += (logmel[0].mean(0)[mel], bands[0, keep])
        parts.append(Latents(*(t.float().cpu().numpy() for t in pieces)))
    return Latents(*(np.concatenate([getattr(p, k) for p in parts]) for k in FIELDS))


def encode_many(m: LoadedModel, waves: list[np.ndarray], chunk: int = CHUNK_LATENTS) -> list[Latents]:
    """Encode waveforms of any lengths: equal lengths share a forward pass, long ones are chunked.

    Raises TooShortError (naming the length) if any wave is shorter than one latent frame;
    callers that must not fail as a whole check `min_samples` first.
    """
    shortest = min_samples(m)
    out: list[Latents | None] = [None] * len(waves)
    groups: dict[int, list[int]] = defaultdict(list)
    for i, w in enumerate(waves):
        if len(w) < shortest:
            raise TooShortError(f"clip has {len(w)} samples; at least {shortest} (one latent frame) are needed")
        if num_frames(len(w), m.features) > chunk * m.vae.cfg.downsample:
            out[i] = encode_long(m, torch.from_numpy(w), chunk)
        else:
            groups[len(w)].append(i)
    for idx in groups.values():
        batch = torch.from_numpy(np.stack([waves[i] for i in idx]))
        for i, lat in zip(idx, encode_equal(m, batch)):
            out[i] = lat
    return out  # type: ignore[return-value]

"""Checkpoints: weights, optimizer state, step, and the model/feature/loss configs, in one
`model.pt` loaded with `torch.load(weights_only=True)` (a checkpoint is untrusted input), plus a
human-readable `meta.json` beside it. A checkpoint may also hold a learned waveform decoder
(`vocoder` weights and `vocoder_config`, trained by `raydist train --stage vocoder`): one file
serves embed, compress, decompress and generate. `stage` says which network the step count and
optimizer state belong to ("vae" or "vocoder")."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import fsspec
import torch

from raydist.audio.features import LogMel
from raydist.config import FeatureConfig, LossConfig, ModelConfig, VocoderConfig
from raydist.errors import RaydistError
from raydist.model.vae import AudioVAE
from raydist.model.vocoder import Vocoder

FORMAT = "raydist.vae"
VERSION = 1
FILENAME = "model.pt"
MAX_BYTES = 2 * 1024**3  # refuse checkpoints over 2 GiB before reading them


class CheckpointError(RaydistError, ValueError):
    """The file is missing, corrupt, too large or not a raydist checkpoint."""


def checkpoint_file(uri: str) -> str:
    """A checkpoint is named by its model.pt or by the directory that holds it."""
    return uri if uri.endswith(".pt") else uri.rstrip("/") + "/" + FILENAME


def save_checkpoint(
    directory: str,
    model: AudioVAE,
    features: FeatureConfig,
    loss: LossConfig,
    step: int,
    epoch: int,
    optimizer: torch.optim.Optimizer | None = None,
    metrics: dict[str, float] | None = None,
    vocoder: Vocoder | None = None,
    stage: str = "vae",
    discriminator: dict[str, Any] | None = None,
) -> str:
    """Write `directory`/model.pt and meta.json; return model.pt's URI. `optimizer`, `step` and
    `epoch` belong to `stage`: the VAE's, or the vocoder's when it is the one being trained.
    `discriminator` ({"model": state dict, "optimizer": state dict}) is kept for resuming GAN
    training of the vocoder; decoding never reads it."""
    state = {
        "stage": stage,
        "format": FORMAT,
        "version": VERSION,
        "step": int(step),
        "epoch": int(epoch),
        "feature_config": features.to_dict(),
        "model_config": model.cfg.to_dict(),
        "loss_config": loss.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
    }
    if vocoder is not None:
        state["vocoder_config"] = vocoder.cfg.to_dict()
        state["vocoder"] = {k: v.detach().cpu() for k, v in vocoder.state_dict().items()}
    if discriminator is not None:
        state["discriminator"] = discriminator
    buf = io.BytesIO()
    torch.save(state, buf)
    path = checkpoint_file(directory)
    with fsspec.open(path, "wb") as f:
        f.write(buf.getvalue())
    meta = {k: v for k, v in state.items() if k not in ("model", "optimizer", "vocoder", "discriminator")}
    meta["sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    with fsspec.open(directory.rstrip("/") + "/meta.json", "w") as f:
        json.dump(meta, f, indent=2)
    return path


def read_checkpoint(uri: str, storage_options: dict[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    """Load and validate a checkpoint; return (state, sha256 of its bytes)."""
    path = checkpoint_file(uri)
    try:
        with fsspec.open(path, "rb", **(storage_options or {})) as f:
            size = f.size if hasattr(f, "size") and f.size is not None else None
            if size is not None and size > MAX_BYTES:
                raise CheckpointError(f"{path} is {size} bytes, over the {MAX_BYTES}-byte limit")
            data = f.read(MAX_BYTES + 1)
    except (OSError, ValueError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e
    if len(data) > MAX_BYTES:
        raise CheckpointError(f"{path} is over the {MAX_BYTES}-byte limit")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or unsafe files
        raise CheckpointError(f"{path} is not a loadable raydist checkpoint: {type(e).__name__}: {e}") from e
    _validate(state, path)
    return state, hashlib.sha256(data).hexdigest()


def _validate(state: Any, path: str) -> None:
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a raydist checkpoint (format must be {FORMAT!r})")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {state.get('version')!r}; this raydist reads {VERSION}")
    for key in ("step", "epoch"):
        if not isinstance(state.get(key), int):
            raise CheckpointError(f"{path}: {key} must be an int, got {state.get(key)!r}")
    try:
        features = FeatureConfig.from_dict(state["feature_config"])
        model_cfg = ModelConfig.from_dict(state["model_config"])
        LossConfig.from_dict(state["loss_config"])
        if "vocoder_config" in state:
            VocoderConfig.from_dict(state["vocoder_config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid config: {e}") from e
    if features.n_mels != model_cfg.n_mels:
        raise CheckpointError(f"{path}: feature n_mels {features.n_mels} != model n_mels {model_cfg.n_mels}")
    if state.get("stage", "vae") not in ("vae", "vocoder") or ("vocoder_config" in state) != ("vocoder" in state):
        raise CheckpointError(f"{path}: stage must be vae or vocoder, and vocoder weights come with their config")


@dataclass
class LoadedModel:
    """A ready encoder/decoder with the front end it was trained on."""

    vae: AudioVAE
    logmel: LogMel
    features: FeatureConfig
    checkpoint_id: str  # sha256 of model.pt
    step: int
    uri: str
    vocoder: Vocoder | None = None  # the learned waveform decoder, when the checkpoint has one

    @property
    def latent_rate(self) -> float:
        return self.features.frame_rate / self.vae.cfg.downsample

    @cached_property
    def vae_id(self) -> str:
        """sha256 of what fixes the latents and their decoded log-mel: the feature and model configs
        and the VAE's weights. A checkpoint and the same VAE with a vocoder added share it, so codes
        compressed before the vocoder was trained decode with the checkpoint that has one. Computed
        on first use (compress and decompress need it; embedding does not)."""
        h = hashlib.sha256()
        h.update(json.dumps([self.features.to_dict(), self.vae.cfg.to_dict()], sort_keys=True).encode())
        for key, value in sorted(self.vae.state_dict().items()):
            h.update(key.encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()


def build_model(state: dict[str, Any]) -> AudioVAE:
    # checkpoints from before the invariance term have no projection head
    model = AudioVAE(ModelConfig.from_dict({"proj_dim": 0, **state["model_config"]}))
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError) as e:
        raise CheckpointError(f"weights do not match the model config: {e}") from e
    return model


def build_vocoder(state: dict[str, Any]) -> Vocoder | None:
    """The checkpoint's vocoder, or None when it has none (decoding falls back to Griffin-Lim)."""
    if "vocoder" not in state:
        return None
    features, model_cfg = FeatureConfig.from_dict(state["feature_config"]), ModelConfig.from_dict(state["model_config"])
    vocoder = Vocoder(VocoderConfig.from_dict(state["vocoder_config"]), features, model_cfg)
    try:
        vocoder.load_state_dict(state["vocoder"])
    except (RuntimeError, TypeError, AttributeError) as e:
        raise CheckpointError(f"vocoder weights do not match its config: {e}") from e
    return vocoder


def load_model(
    uri: str, device: str | torch.device = "cpu", storage_options: dict[str, Any] | None = None
) -> LoadedModel:
    """Load a checkpoint (model.pt, or a directory holding one; local or any fsspec URI)."""
    state, digest = read_checkpoint(uri, storage_options)
    return model_from_state(state, digest, checkpoint_file(uri), device)


def model_from_state(state: dict[str, Any], digest: str, uri: str, device: str | torch.device = "cpu") -> LoadedModel:
    """A ready model from a state `read_checkpoint` returned (for callers that also need the
    rest of the state: one read of the file)."""
    features = FeatureConfig.from_dict(state["feature_config"])
    vae = build_model(state).to(device).eval()
    vocoder = build_vocoder(state)
    return LoadedModel(
        vae,
        LogMel(features).to(device),
        features,
        digest,
        state["step"],
        uri,
        vocoder.to(device).eval() if vocoder is not None else None,
    )


def vocoder_config_for(state: dict[str, Any], given: VocoderConfig | None = None) -> VocoderConfig:
    """The vocoder shape a `--stage vocoder` run on this checkpoint trains: `given`, else the
    checkpoint's own vocoder's (which is then trained on), else the VAE preset's."""
    if given is not None:
        return given
    if "vocoder_config" in state:
        return VocoderConfig.from_dict(state["vocoder_config"])
    return VocoderConfig.from_preset(state["model_config"].get("preset", "small"))

"""The VAE: blocks -> model -> losses, checkpoints. Plain torch (no Ray)."""

from raydist.model.checkpoint import CheckpointError, LoadedModel, load_model, read_checkpoint, save_checkpoint
from raydist.model.vae import AudioVAE, Decoder, Encoder

__all__ = [
    "AudioVAE",
    "CheckpointError",
    "Decoder",
    "Encoder",
    "LoadedModel",
    "load_model",
    "read_checkpoint",
    "save_checkpoint",
]

"""The VAE, plain torch (no Ray): `blocks` (residual conv blocks) -> `vae` (encoder to per-frame
mean and log-variance, reparameterisation, decoder back to log-mel; the training-only projection
head of the invariance term) -> `losses` (named ELBO terms, KL warm-up, free bits, InfoNCE);
`metrics` (active dims, PCA figures of the latents);
`vocoder` (the learned waveform decoder: ConvNeXt + inverse STFT, its losses and discriminator);
`checkpoint` (save, validate and load model.pt with its configs and optional vocoder, `LoadedModel`)."""

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

"""The codec object: one model's latents <-> compressed rows <-> audio.

    codec = Codec(load_model("runs/a/model.pt"))
    row = codec.encode(latents.mean, num_samples)        # codes, scale, n_frames, num_samples
    codec.check(row)                                      # a row from disk is untrusted
    wave = codec.decode(row)                              # at row["sample_rate"], row["duration_s"] long
    waves = codec.decode_many(rows)                       # a batch: one vocoder pass per clip length

Plain torch/numpy (no Ray). The row format and byte arithmetic live in `raydist.codec.format`.
"""

from __future__ import annotations

import numpy as np

from raydist.audio.decoding import resample_to
from raydist.codec.format import check_row, dequantize, quantize
from raydist.codec.inversion import latents_to_audio_batch
from raydist.model.checkpoint import LoadedModel


class Codec:
    """Compress and decompress with one checkpoint (its latent size, frame size and rate)."""

    def __init__(self, m: LoadedModel):
        self.m = m
        self.latent_dim = m.vae.cfg.latent_dim
        self.frame_samples = m.vae.cfg.downsample * m.features.hop_length  # model-rate samples per latent frame
        self.rate = m.features.sample_rate

    def encode(self, mean: np.ndarray, num_samples: int) -> dict:
        """(L, D) latent means of a clip of `num_samples` model-rate samples -> the row's codec fields."""
        c = quantize(mean)
        return {"num_samples": num_samples, "n_frames": c.n_frames, "scale": c.scale, "codes": c.codes}

    def check(self, row: dict) -> None:
        """Raise CodecError unless the row fits this model (see `format.check_row`)."""
        check_row(row, self.latent_dim, self.frame_samples, self.rate)

    def decode(self, row: dict) -> np.ndarray:
        """A checked row -> mono float32 audio at the source rate, exactly the source's length."""
        return self.decode_many([row])[0]

    def decode_many(self, rows: list[dict]) -> list[np.ndarray]:
        """decode() of several rows; every row is checked first (CodecError names the bad one)."""
        for row in rows:
            self.check(row)
        means = [dequantize(r["codes"], np.asarray(r["scale"], np.float32), r["n_frames"]) for r in rows]
        waves = latents_to_audio_batch(self.m, means, [r["num_samples"] for r in rows])
        out = []
        for row, wave in zip(rows, waves):
            wave = resample_to(wave, self.rate, row["sample_rate"])
            n = round(row["duration_s"] * row["sample_rate"])
            out.append(np.pad(wave, (0, max(0, n - len(wave))))[:n])
        return out

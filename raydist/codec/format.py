"""The compressed row and its arithmetic, numpy only (the Parquet writers import this without
torch). A row of the codes table (schema `raydist.io.schema.CODES`) holds int8 codes of the
latent means, a float16 scale per latent dimension, and what decoding needs: samples at the
model rate, source rate and duration. A compressed set is untrusted input: `check_row` checks a
row against the model before any decoding allocates memory for it."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raydist.audio.rates import MAX_RATE, MIN_RATE
from raydist.errors import RaydistError
from raydist.io.inputs import AUDIO_EXTENSIONS

LEVELS = 127  # int8 codes in [-127, 127]
SCALE_BYTES = 2  # float16 scale per latent dimension
PCM16_BYTES = 2  # bytes per sample of 16-bit PCM
DECODED_FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16")}  # decompress --format: soundfile's names


class CodecError(RaydistError, ValueError):
    """A compressed set or row cannot be decoded; the message names the bad value."""


@dataclass
class Codes:
    codes: bytes  # (L, D) int8, row-major
    scale: np.ndarray  # (D,) float16: max |mean| per dimension over the clip
    n_frames: int

    @property
    def payload_bytes(self) -> int:
        return int(payload_bytes(self.n_frames, len(self.scale)))


def payload_bytes(n_frames, dims):
    """Bytes of latent payload per clip: int8 codes (n_frames x dims) plus float16 scales (dims).
    Takes ints or numpy arrays (one entry per clip)."""
    return n_frames * dims + SCALE_BYTES * dims


def pcm16_bytes(duration_s, sample_rate, channels):
    """Bytes of the same audio as 16-bit PCM at its source rate and channel count (ints, floats
    or numpy arrays)."""
    return PCM16_BYTES * duration_s * sample_rate * channels


def table_payload_bytes(codes: pa.Table) -> int:
    """Latent payload of every row of a codes table (n_frames and scale columns)."""
    n_frames = codes.column("n_frames").to_numpy(zero_copy_only=False).astype(np.int64)
    dims = pc.list_value_length(codes.column("scale")).to_numpy(zero_copy_only=False).astype(np.int64)
    return int(payload_bytes(n_frames, dims).sum())


def table_pcm16_bytes(table: pa.Table) -> float:
    """16-bit PCM size of every row of a table with duration_s, sample_rate and channels columns."""
    cols = (
        table.column(k).to_numpy(zero_copy_only=False).astype(np.float64)
        for k in ("duration_s", "sample_rate", "channels")
    )
    return float(pcm16_bytes(*cols).sum())


def quantize(mean: np.ndarray) -> Codes:
    """(L, D) float latents -> int8 codes with a per-dimension scale (symmetric, round to nearest)."""
    scale = np.abs(mean).max(0).astype(np.float16).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0)
    q = np.clip(np.rint(mean / safe * LEVELS), -LEVELS, LEVELS).astype(np.int8)
    return Codes(q.tobytes(), scale.astype(np.float16), len(mean))


def dequantize(codes: bytes, scale: np.ndarray, n_frames: int) -> np.ndarray:
    """Inverse of quantize: (L, D) float32."""
    q = np.frombuffer(codes, np.int8).reshape(n_frames, len(scale)).astype(np.float32)
    return q / LEVELS * np.asarray(scale, np.float32)


def frames_for(num_samples: int, frame_samples: int) -> int:
    """Latent frames the encoder makes from `num_samples` samples at the model rate."""
    return num_samples // frame_samples + 1


def check_row(row: dict, latent_dim: int, frame_samples: int, model_rate: int) -> None:
    """Raise CodecError unless the row's frame count, code length, scales, rate and duration are
    consistent with a model of `latent_dim` dims and `frame_samples` samples per latent frame.
    Every rate the decoder accepts on the way in is accepted here (`raydist.audio.rates`)."""
    n, codes, scale = row.get("n_frames"), row.get("codes"), row.get("scale")
    if not isinstance(n, int) or n < 1:
        raise CodecError(f"n_frames must be a positive integer, got {n!r}")
    if scale is None or len(scale) != latent_dim:
        got = None if scale is None else len(scale)
        raise CodecError(f"scale has {got} entries; the model has {latent_dim} latent dims")
    if not all(v is not None and np.isfinite(v) and v >= 0 for v in scale):
        raise CodecError("scale holds a negative, missing or non-finite value")
    if not isinstance(codes, bytes) or len(codes) != n * latent_dim:
        raise CodecError(f"codes hold {len(codes) if codes else 0} bytes; n_frames x dims is {n * latent_dim}")
    samples, rate, seconds = row.get("num_samples"), row.get("sample_rate"), row.get("duration_s")
    if not isinstance(samples, int) or samples < 1 or frames_for(samples, frame_samples) != n:
        raise CodecError(f"num_samples {samples!r} does not fit {n} latent frames of {frame_samples} samples")
    if not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
        raise CodecError(f"sample_rate {rate!r} is outside {MIN_RATE}..{MAX_RATE} Hz")
    expected = samples / model_rate
    if not isinstance(seconds, float) or not np.isfinite(seconds) or abs(seconds - expected) > 0.01 + 1 / rate:
        raise CodecError(f"duration_s {seconds!r} does not match num_samples ({expected:.3f} s)")


def safe_relpath(clip_id: str, ext: str) -> str:
    """An output path for an id that cannot leave the output root: no absolute paths, no '..';
    an audio extension the id carries is replaced by `ext`."""
    parts = [p for p in clip_id.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    stem = "/".join(parts) or "clip"
    root, old = posixpath.splitext(stem)
    return f"{root if old.lower() in AUDIO_EXTENSIONS else stem}.{ext}"

"""Decode audio from bytes, paths or URIs (local or fsspec, s3:// included) to mono float32 at
the model rate. No Ray here.

Decoding streams: the file is read in blocks, mixed to mono and resampled block by block with
enough context on each side that the result equals resampling the whole file at once. A one-hour
44.1 kHz stereo file therefore never sits in memory at its source rate.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import IO, Any, Union

import fsspec
import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from raydist.audio.errors import DecodeError, EmptyAudioError, NonFiniteAudioError, ReadError
from raydist.audio.rates import MAX_RATE, MIN_RATE, workable_rate

Source = Union[bytes, str, IO[bytes]]

LOWPASS_FILTER_WIDTH = 6  # torchaudio's default sinc width, in zero crossings
ROLLOFF = 0.99
BLOCK_SAMPLES = 1 << 23  # most source samples (all channels) read at once: 32 MiB of float32


@dataclass(frozen=True)
class AudioInfo:
    """What the source file was, before mono mixing and resampling."""

    sample_rate: int
    channels: int
    frames: int  # samples per channel at the source rate
    format: str  # soundfile's container name, e.g. WAV, FLAC, OGG, MP3
    bytes: int = -1  # size of the encoded source, -1 if unknown

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def open_source(source: Source, storage_options: dict[str, Any] | None = None) -> IO[bytes]:
    """Return a binary file object for bytes, a local path or any fsspec URI."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    if isinstance(source, str):
        try:
            return fsspec.open(source, "rb", **(storage_options or {})).open()
        except (OSError, ValueError) as e:
            raise ReadError(f"cannot open {source}: {type(e).__name__}: {e}") from e
    return source


def resample(x: np.ndarray, orig: int, new: int) -> np.ndarray:
    """Resample a 1-D float32 signal with torchaudio's windowed-sinc resampler."""
    if orig == new:
        return x
    y = AF.resample(torch.from_numpy(x), orig, new, lowpass_filter_width=LOWPASS_FILTER_WIDTH, rolloff=ROLLOFF)
    return y.numpy()


def resample_to(x: np.ndarray, orig: int, new: int) -> np.ndarray:
    """Resample to any supported rate `new`, exactly `ceil(len(x) * new / orig)` samples long: an
    odd rate is reached through `workable_rate` (e.g. 44096 Hz for 44101 Hz, a 0.01% pitch error),
    as the decoder does on the way in."""
    y = resample(x, orig, workable_rate(new, orig))
    n = math.ceil(len(x) * new / orig)
    return np.pad(y, (0, max(0, n - len(y))))[:n]


def _context(orig: int, new: int) -> tuple[int, int, int]:
    """(orig', new', context): reduced rates and the input context (a multiple of orig')
    that makes block-wise resampling equal whole-signal resampling."""
    g = math.gcd(orig, new)
    o, n = orig // g, new // g
    width = math.ceil(LOWPASS_FILTER_WIDTH * o / (min(o, n) * ROLLOFF))
    blocks = math.ceil((2 * width + o) / o) + 1
    return o, n, o * blocks


def _size(f: IO[bytes]) -> int:
    try:
        pos = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(pos)
        return int(end)
    except (OSError, ValueError, AttributeError):
        return -1


def _mono(block: np.ndarray) -> np.ndarray:
    # (frames, channels) -> (frames,)
    return block[:, 0].copy() if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)


def decode(
    source: Source,
    target_rate: int,
    *,
    block_seconds: float = 30.0,
    name: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> tuple[np.ndarray, AudioInfo]:
    """Decode `source` to a mono float32 array at `target_rate`, plus the source's AudioInfo.

    Raises ReadError, DecodeError, EmptyAudioError or NonFiniteAudioError; `name` (default: the
    path) is what their messages call the input.
    """
    name = name or (source if isinstance(source, str) else "<bytes>")
    f = open_source(source, storage_options)
    try:
        try:
            snd = sf.SoundFile(f)
        except (sf.LibsndfileError, RuntimeError, TypeError) as e:
            why = re.sub(r"Error opening <[^>]*>: ", "", str(e))  # a file object's repr says nothing to a user
            raise DecodeError(f"cannot decode {name}: {why}") from e
        with snd:
            info = AudioInfo(snd.samplerate, snd.channels, snd.frames, snd.format, _size(f))
            if not MIN_RATE <= info.sample_rate <= MAX_RATE:
                raise DecodeError(
                    f"{name} has sample rate {info.sample_rate} Hz; {MIN_RATE}..{MAX_RATE} Hz is supported"
                )
            if info.channels < 1:
                raise DecodeError(f"{name} declares {info.channels} channels")
            return _decode_blocks(snd, info, target_rate, block_seconds, name), info
    finally:
        f.close()


def _decode_blocks(snd: sf.SoundFile, info: AudioInfo, target: int, block_seconds: float, name: str) -> np.ndarray:
    rate = workable_rate(info.sample_rate, target)
    o, n, ctx = _context(rate, target)
    frames = min(block_seconds * rate, BLOCK_SAMPLES / info.channels)  # bounded whatever the header claims
    block = o * max(1, round(frames / o))
    pieces: list[np.ndarray] = []
    pending = np.zeros(0, np.float32)  # source samples from index `start` on
    start = 0  # source index of pending[0]
    a = 0  # source index of the next block to emit
    total = 0
    while True:
        try:
            raw = snd.read(block, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise DecodeError(f"cannot decode {name} after {total} samples: {e}") from e
        if len(raw):
            bad = np.size(raw) - int(np.isfinite(raw).sum())
            if bad:
                raise NonFiniteAudioError(f"{name} holds {bad} NaN or infinite samples")
            pending = np.concatenate([pending, _mono(raw)])
            total += len(raw)
        done = len(raw) < block
        # emit every block whose right context is in hand (or all that is left at the end)
        while a < total and (done or total >= a + block + ctx):
            lo = max(0, a - ctx)
            hi = total if done else a + block + ctx
            seg = resample(pending[lo - start : hi - start], rate, target)
            first = (a - lo) // o * n
            count = (math.ceil(n * total / o) - a // o * n) if (done and a + block >= total) else block // o * n
            pieces.append(seg[first : first + count])
            a += block
            drop = max(0, a - ctx) - start
            pending, start = pending[drop:], start + drop
        if done:
            break
    if total == 0:
        raise EmptyAudioError(f"{name} holds no samples")
    return np.concatenate(pieces).astype(np.float32, copy=False)

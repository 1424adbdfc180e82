"""Audio front end: decoding, resampling and log-mel features, plain torch/numpy (no Ray)."""

from raydist.audio.decode import AudioInfo, decode, resample
from raydist.audio.errors import (
    AudioError,
    DecodeError,
    EmptyAudioError,
    NonFiniteAudioError,
    ReadError,
    TooShortError,
)
from raydist.audio.features import LogMel

__all__ = [
    "AudioError",
    "AudioInfo",
    "DecodeError",
    "EmptyAudioError",
    "LogMel",
    "NonFiniteAudioError",
    "ReadError",
    "TooShortError",
    "decode",
    "resample",
]

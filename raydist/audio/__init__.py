"""The audio front end, plain torch/numpy (no Ray): decoding any container soundfile reads from
bytes, paths or fsspec URIs, block-wise resampling to the model rate (`decoding`), the sample
rates taken (`rates`), log-mel features (`features`), typed input errors (`errors`) and
synthetic test signals (`synth`).

Names load lazily, so `raydist.audio.rates` and `raydist.audio.errors` cost no torch import
(the Parquet writers use them)."""

from __future__ import annotations

import importlib

_EXPORTS = {
    "AudioInfo": "decoding",
    "decode": "decoding",
    "resample": "decoding",
    "resample_to": "decoding",
    "LogMel": "features",
    "AudioError": "errors",
    "DecodeError": "errors",
    "EmptyAudioError": "errors",
    "NonFiniteAudioError": "errors",
    "ReadError": "errors",
    "TooShortError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'raydist.audio' has no attribute {name!r}")
    return getattr(importlib.import_module(f"raydist.audio.{_EXPORTS[name]}"), name)

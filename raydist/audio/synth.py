"""Synthetic signals: the building blocks of the demo corpus and of the tests. numpy only.

Every function takes a duration in seconds, a sample rate and a numpy Generator (where random),
and returns float32 mono samples in [-1, 1].
"""

from __future__ import annotations

import numpy as np


def _t(seconds: float, sr: int) -> np.ndarray:
    return np.arange(int(round(seconds * sr))) / sr


def tone(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    """A pure sine."""
    return (amp * np.sin(2 * np.pi * freq * _t(seconds, sr))).astype(np.float32)


def harmonic(
    f0: float, seconds: float, sr: int, n_harmonics: int = 5, vibrato_hz: float = 5.0, vibrato_depth: float = 0.01
) -> np.ndarray:
    """A harmonic tone with 1/k amplitudes and sinusoidal vibrato (harmonics kept below Nyquist)."""
    t = _t(seconds, sr)
    phase = 2 * np.pi * np.cumsum(f0 * (1 + vibrato_depth * np.sin(2 * np.pi * vibrato_hz * t))) / sr
    out = sum(np.sin(k * phase) / k for k in range(1, n_harmonics + 1) if k * f0 * 1.05 < sr / 2)
    return _normalize(np.asarray(out) * _fade(len(t), sr))


def chirp(f_start: float, f_end: float, seconds: float, sr: int) -> np.ndarray:
    """An exponential sine sweep from f_start to f_end."""
    t = _t(seconds, sr)
    k = np.log(f_end / f_start) / max(seconds, 1e-9)
    phase = 2 * np.pi * f_start * (np.exp(k * t) - 1) / k
    return _normalize(np.sin(phase) * _fade(len(t), sr))


def noise_burst(seconds: float, sr: int, rng: np.random.Generator, lowpass_hz: float | None = None) -> np.ndarray:
    """White noise, optionally low-passed by an FFT brick wall, with a percussive envelope."""
    n = int(round(seconds * sr))
    x = rng.standard_normal(n)
    if lowpass_hz is not None:
        spec = np.fft.rfft(x)
        spec[np.fft.rfftfreq(n, 1 / sr) > lowpass_hz] = 0
        x = np.fft.irfft(spec, n)
    env = np.exp(-np.linspace(0, 3, n))
    return _normalize(x * env * _fade(n, sr))


def clicks(rate_hz: float, seconds: float, sr: int) -> np.ndarray:
    """A click train: 2 ms decaying pulses at `rate_hz`."""
    n = int(round(seconds * sr))
    out = np.zeros(n)
    pulse = np.exp(-np.arange(int(0.002 * sr) + 1) / (0.0005 * sr))
    for start in (np.arange(0, seconds, 1 / rate_hz) * sr).astype(int):
        seg = pulse[: n - start]
        out[start : start + len(seg)] += seg
    return _normalize(out)


def silence(seconds: float, sr: int) -> np.ndarray:
    return np.zeros(int(round(seconds * sr)), np.float32)


def _fade(n: int, sr: int, seconds: float = 0.01) -> np.ndarray:
    k = min(n // 2, int(seconds * sr))
    env = np.ones(n)
    if k:
        env[:k] = np.linspace(0, 1, k)
        env[n - k :] = np.linspace(1, 0, k)
    return env


def _normalize(x: np.ndarray, peak: float = 0.5) -> np.ndarray:
    m = np.max(np.abs(x)) if len(x) else 0.0
    return (x * (peak / m) if m > 0 else x).astype(np.float32)

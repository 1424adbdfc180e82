"""The built-in demo corpus: synthetic but structured audio with class labels and known segment
boundaries, written as real files (WAV and FLAC at several rates and channel counts) with a
manifest. `python -m raydist.demo.corpus DIR` writes one.

Each clip holds 1 to 3 events of its class separated by silences; the events' starts and ends are
the reference segment boundaries.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from raydist.audio import synth

CLASSES = ("tone", "chirp", "noise", "clicks", "mixture")
RATES = (8000, 16000, 22050, 44100, 48000)


@dataclass
class Clip:
    id: str
    label: str
    split: str
    sample_rate: int
    audio: np.ndarray  # (N, channels) float32
    events: list[tuple[float, float]]  # (start_s, end_s) of each event


def _event(label: str, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    if label == "tone":
        return synth.harmonic(rng.uniform(110, 880), seconds, sr, vibrato_hz=rng.uniform(3, 7))
    if label == "chirp":
        lo, hi = rng.uniform(100, 400), rng.uniform(1500, min(3800, sr / 2 - 100))
        return synth.chirp(*((lo, hi) if rng.random() < 0.5 else (hi, lo)), seconds, sr)
    if label == "noise":
        return synth.noise_burst(seconds, sr, rng, lowpass_hz=rng.choice([None, 1000.0, 3000.0]))
    if label == "clicks":
        return synth.clicks(rng.uniform(4, 40), seconds, sr)
    if label == "mixture":
        mix = synth.harmonic(rng.uniform(110, 880), seconds, sr) + 0.5 * synth.noise_burst(seconds, sr, rng)
        return (0.5 * mix / np.max(np.abs(mix))).astype(np.float32)
    raise ValueError(f"unknown class {label!r}; choose from {CLASSES}")


def make_clip(index: int, rng: np.random.Generator, label: str | None = None) -> Clip:
    label = label or CLASSES[index % len(CLASSES)]
    sr = int(rng.choice(RATES))
    pieces, events, t = [synth.silence(rng.uniform(0.1, 0.4), sr)], [], 0.0
    t = len(pieces[0]) / sr
    for _ in range(int(rng.integers(1, 4))):
        ev = _event(label, rng.uniform(0.5, 1.8), sr, rng)
        events.append((round(t, 4), round(t + len(ev) / sr, 4)))
        gap = synth.silence(rng.uniform(0.2, 0.6), sr)
        pieces += [ev, gap]
        t += (len(ev) + len(gap)) / sr
    mono = np.concatenate(pieces) * rng.uniform(0.3, 1.0)
    mono += rng.standard_normal(len(mono)).astype(np.float32) * 1e-3  # a faint noise floor
    channels = int(rng.choice([1, 2]))
    audio = np.repeat(mono[:, None], channels, axis=1).astype(np.float32)
    split = "test" if index % 5 == 4 else "train"
    return Clip(f"clip{index:04d}", label, split, sr, audio, events)


def write_corpus(directory: str, n_clips: int = 200, seed: int = 0) -> str:
    """Write `n_clips` clips under directory/audio, plus manifest.csv (id, uri, label, split) and
    segments.csv (id, start_s, end_s, label). Returns the manifest's path."""
    rng = np.random.default_rng(seed)
    audio_dir = os.path.join(directory, "audio")
    os.makedirs(audio_dir, exist_ok=True)
    rows, segs = [], []
    for i in range(n_clips):
        clip = make_clip(i, rng)
        ext = "flac" if i % 3 == 2 else "wav"
        name = f"audio/{clip.id}.{ext}"  # relative to the manifest: the corpus can move
        sf.write(os.path.join(directory, name), clip.audio, clip.sample_rate, subtype="PCM_16")
        rows.append({"id": clip.id, "uri": name, "label": clip.label, "split": clip.split})
        segs += [{"id": clip.id, "start_s": a, "end_s": b, "label": clip.label} for a, b in clip.events]
    manifest = os.path.join(directory, "manifest.csv")
    _write_csv(manifest, rows)
    _write_csv(os.path.join(directory, "segments.csv"), segs)
    return manifest


def _write_csv(path: str, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    import sys

    print(write_corpus(sys.argv[1]))

"""A second segmentation corpus, built unlike `joined` (`segments`): other voices, programs and
words than both of its splits; parts joined with random gaps (0-1.5 s) or crossfades (0-200 ms);
each part at its own level (jumps up to 12 dB); noise at 10-30 dB SNR on half the files; runs of
one voice saying different words and one program playing different phrases, whose internal
joins are not boundaries. Truth is at the onset of each new source (its first sound), and every
part is recorded with its source, level and join. Needs `apt-get install espeak-ng fluidsynth
fluid-soundfont-gm`.

    from bench.corpora.varied import build
    manifest, truth, joins = build("/tmp/varied", n_files=60, seed=2)
"""

from __future__ import annotations

import csv
import os
import tempfile

import numpy as np
import soundfile as sf

from bench.corpora.joined import RATE, instrument_piece, need_tools, speech_piece

VOICES = (
    ("en-gb-x-rp+m4", "male"),
    ("en-us-nyc+m6", "male"),
    ("en-gb-x-gbcwmd+m5", "male"),
    ("en-us+f1", "female"),
    ("en-gb-scotland+Annie", "female"),
)
PROGRAMS = ((2, "piano"), (11, "mallet"), (19, "organ"), (27, "guitar"), (48, "strings"), (60, "brass"), (68, "reed"))
WORDS = ("hello", "table", "yellow", "window", "thirty", "garden", "music", "paper", "orange", "silver")
MIN_PART_S = 1.5  # each part is tiled (its material repeated with pauses) to at least this long


def _tiled(make, rng: np.random.Generator) -> np.ndarray:
    """Pieces from `make()` joined with 0.1-0.4 s pauses until at least MIN_PART_S long."""
    parts = [make()]
    while sum(map(len, parts)) < MIN_PART_S * RATE:
        parts += [np.zeros(int(rng.uniform(0.1, 0.4) * RATE), np.float32), make()]
    return np.concatenate(parts)


def _part(src: tuple, rng: np.random.Generator, tmp: str) -> np.ndarray:
    if src[0].startswith("voice:"):
        word = WORDS[int(rng.integers(len(WORDS)))]
        return _tiled(lambda: speech_piece(src[2], word, rng, tmp), rng)
    return _tiled(lambda: instrument_piece(src[2], rng, tmp), rng)


def kind(a: str, b: str) -> str:
    if a == b:
        return "same source"
    ka, kb = a.split(":")[0], b.split(":")[0]
    return f"{ka}→{kb}" if ka == kb else "voice↔program"


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Coloured noise, unit power: white noise shaped to a 1/f^a spectrum, a in 0.5-1.5 (pink to
    near brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    x = np.fft.irfft(spectrum / np.maximum(f, 1.0) ** (float(rng.uniform(0.5, 1.5)) / 2), n)
    return (x / x.std()).astype(np.float32)


def build(root: str, n_files: int = 60, seed: int = 2) -> tuple[str, str, str]:
    """Write n_files files under root/audio; return (manifest.csv, truth.csv with one row per
    run of one source (id, start_s, end_s, source: starts and ends at source onsets), joins.csv
    with one row per join (id, onset_s, kind, gap_s, crossfade_s, jump_db, source, previous))."""
    need_tools()
    rng = np.random.default_rng(seed)
    sources = [("voice:" + v, g, v) for v, g in VOICES] + [(f"program:{p}", fam, p) for p, fam in PROGRAMS]
    os.makedirs(os.path.join(root, "audio"), exist_ok=True)
    rows, truth, joins = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n_files):
            cid, order = f"var{i:03d}", []
            while len(order) < int(rng.integers(4, 7)):
                src = sources[int(rng.integers(len(sources)))]
                if order and src == order[-1] and rng.random() < 0.7:
                    continue  # same-source runs, but not most of the time
                order += [src] * (2 if rng.random() < 0.25 else 1)
            y = np.zeros(0, np.float32)
            gain_db = 0.0
            run_start = 0.0
            for k, src in enumerate(order):
                x = _part(src, rng, tmp)
                step = float(rng.uniform(-12, 12)) if k else 0.0
                gain_db = float(np.clip(gain_db + step, -12, 12))
                x = x * 10 ** (gain_db / 20)
                lead = int(np.flatnonzero(np.abs(x) > 0.01 * np.abs(x).max())[0])  # its first sound
                gap = xfade = 0.0
                if k and rng.random() < 0.65:
                    gap = float(rng.uniform(0, 1.5))
                elif k:
                    xfade = float(rng.uniform(0, 0.2))
                if gap:
                    y = np.concatenate([y, np.zeros(int(gap * RATE), np.float32)])
                start = len(y) - int(xfade * RATE)
                fade = len(y) - start
                if fade:  # linear crossfade: the old part fades out as the new one fades in
                    ramp = np.linspace(0, 1, fade, dtype=np.float32)
                    y[start:] *= 1 - ramp
                    x = x.copy()
                    x[:fade] *= ramp
                out = np.zeros(max(len(y), start + len(x)), np.float32)
                out[: len(y)] = y
                out[start : start + len(x)] += x
                y = out
                onset = (start + lead) / RATE
                if k:
                    kind_ = kind(order[k - 1][0], src[0])
                    joins.append(
                        {
                            "id": cid,
                            "onset_s": round(onset, 4),
                            "kind": kind_,
                            "gap_s": round(gap, 3),
                            "crossfade_s": round(xfade, 3),
                            "jump_db": round(step, 2),
                            "source": src[0],
                            "previous": order[k - 1][0],
                        }
                    )
                    if kind_ != "same source":
                        truth.append({"id": cid, "start_s": round(run_start, 4), "end_s": round(onset, 4)})
                        truth[-1]["source"] = order[k - 1][0]
                        run_start = onset
            truth.append({"id": cid, "start_s": round(run_start, 4), "end_s": round(len(y) / RATE, 4)})
            truth[-1]["source"] = order[-1][0]
            if i % 2:  # noise on every other file, 10-30 dB below the signal's mean power over its sound
                loud = y[np.abs(y) > 0.01 * np.abs(y).max()]
                snr = float(rng.uniform(10, 30))
                y = y + _noise(len(y), rng) * float(np.sqrt(np.mean(loud**2))) * 10 ** (-snr / 20)
            peak = float(np.abs(y).max())
            y = y * (0.9 / peak) if peak > 0.9 else y
            sf.write(os.path.join(root, "audio", f"{cid}.wav"), y, RATE, subtype="PCM_16")
            rows.append({"id": cid, "uri": f"audio/{cid}.wav"})
    out = [os.path.join(root, n) for n in ("manifest.csv", "truth.csv", "joins.csv")]
    for path, table in zip(out, (rows, truth, joins)):
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(table[0]))
            w.writeheader()
            w.writerows(table)
    return out[0], out[1], out[2]

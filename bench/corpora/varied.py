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

import os
import subprocess
import tempfile

import numpy as np
import soundfile as sf

from bench.corpora.joined import (
    HELD_PROGRAMS,
    HELD_VOICES,
    RATE,
    SOUNDFONT,
    TUNE_PROGRAMS,
    TUNE_VOICES,
    _midi,
    instrument_piece,
    need_tools,
    speech_piece,
    trim,
    write_csvs,
)
from bench.corpora.joined import WORDS as JOINED_WORDS
from raydist.audio import decode

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
                gap = xfade = 0.0
                if k and rng.random() < 0.65:
                    gap = float(rng.uniform(0, 1.5))
                elif k:
                    xfade = float(rng.uniform(0, 0.2))
                if gap:
                    y = np.concatenate([y, silence(gap)])
                start = len(y) - int(xfade * RATE)
                y = crossfade(y, x, xfade)[0]
                onset = (start + onset_of(x)) / RATE
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
    return write_csvs(root, {"manifest.csv": rows, "truth.csv": truth, "joins.csv": joins})


# -- two-part clips: the four cases source segments must get right ---------------------------------


def onset_of(x: np.ndarray) -> int:
    """First sample above 1% of the peak (-40 dB): where a sound begins."""
    return int(np.flatnonzero(np.abs(x) > 0.01 * np.abs(x).max())[0])


def say(tmp: str, voice: str, text: str, pitch: int = 50) -> np.ndarray:
    """`text` said by an espeak-ng voice at 150 words a minute, silence trimmed to 20 ms."""
    path = os.path.join(tmp, "say.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", "150", "-w", path, text], check=True)
    return trim(decode(path, RATE)[0], keep_s=0.02)


def play(tmp: str, program: int, pitches: list[int], note_s: float = 0.4) -> np.ndarray:
    """A legato phrase of a General MIDI program through fluidsynth, peak 0.5."""
    mid, wav = os.path.join(tmp, "p.mid"), os.path.join(tmp, "p.wav")
    with open(mid, "wb") as f:
        f.write(_midi(program, [(p, note_s, 0.0) for p in pitches]))
    cmd = ["fluidsynth", "-ni", "-g", "0.8", "-r", str(RATE), "-F", wav, SOUNDFONT, mid]
    subprocess.run(cmd, check=True, capture_output=True)
    x = decode(wav, RATE)[0]
    return trim(x / np.abs(x).max() * 0.5, keep_s=0.02)


def crossfade(a: np.ndarray, b: np.ndarray, seconds: float) -> tuple[np.ndarray, float, float]:
    """a fading out as b fades in (linear, over `seconds`): the clip and the fade's start and end."""
    fade = int(seconds * RATE)
    ramp = np.linspace(0, 1, fade, dtype=np.float32)
    y = np.zeros(len(a) + len(b) - fade, np.float32)
    y[: len(a)] += a * np.r_[np.ones(len(a) - fade, np.float32), 1 - ramp]
    y[len(a) - fade :] += b * np.r_[ramp, np.ones(len(b) - fade, np.float32)]
    return y, (len(a) - fade) / RATE, len(a) / RATE


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.float32)


CASES = ("two voices, 1 s pause", "one voice, two words", "two programs, crossfade", "12 dB jump", "no jump")


def two_part_clips(tmp: str, n: int, seed: int) -> list[tuple[str, np.ndarray, tuple]]:
    """n random clips of each case in CASES, from every voice, program and word of both corpora:
    (case, clip, what is right: ("at", onset_s) one boundary within 50 ms; ("inside", a, b) one
    boundary in [a, b]; ("none",) no boundary). A jump clip is one source's material twice, 12 dB
    apart; its control is the same material twice at one level."""
    need_tools()
    rng = np.random.default_rng(seed)
    voices = TUNE_VOICES + HELD_VOICES + VOICES
    programs = [p for p, _ in TUNE_PROGRAMS + HELD_PROGRAMS + PROGRAMS]
    words = JOINED_WORDS + WORDS

    def pick(seq):
        return seq[int(rng.integers(len(seq)))]

    def phrase() -> list[int]:
        centre = int(rng.integers(52, 72))
        return [centre + int(rng.integers(-7, 8)) for _ in range(6)]

    out = []
    for i in range(n):
        men, women = [v for v, g in voices if g == "male"], [v for v, g in voices if g == "female"]
        a, b = (pick(men), pick(women)) if i % 2 else (pick(women), pick(men))
        first, second = say(tmp, a, ", ".join([pick(words)] * 3)), say(tmp, b, ", ".join([pick(words)] * 2))
        at = (len(first) + RATE + onset_of(second)) / RATE
        out.append((CASES[0], np.concatenate([first, silence(1.0), second]), ("at", at)))
        voice, (w1, w2) = pick(voices)[0], rng.choice(words, 2, replace=False)
        two = [say(tmp, voice, f"{w}, {w}") for w in (w1, w2)]
        out.append((CASES[1], np.concatenate([two[0], silence(0.6), two[1]]), ("none",)))
        p, q = rng.choice(programs, 2, replace=False)
        y, start, end = crossfade(play(tmp, int(p), phrase()), play(tmp, int(q), phrase()), 0.2)
        out.append((CASES[2], y, ("inside", start, end)))
        x = play(tmp, pick(programs), phrase()) if i % 2 else say(tmp, pick(voices)[0], ", ".join([pick(words)] * 3))
        quiet = x * np.float32(10 ** (-12 / 20))
        out.append((CASES[3], np.concatenate([x, quiet] if i % 4 < 2 else [quiet, x]), ("none",)))
        out.append((CASES[4], np.concatenate([x, x]), ("none",)))
    return out


def right(expect: tuple, found: list[float]) -> bool:
    if expect[0] == "none":
        return not found
    if expect[0] == "at":
        return len(found) == 1 and abs(found[0] - expect[1]) <= 0.05
    return len(found) == 1 and expect[1] <= found[0] <= expect[2]

"""Concatenations of real sources for the segmentation benchmark (`segments`): words spoken by espeak-ng voices
(each repeated with natural pauses) and phrases played by General MIDI programs through fluidsynth,
joined with no gap. Truth: the joins. Needs `apt-get install espeak-ng fluidsynth fluid-soundfont-gm`.

    from bench.corpora.joined import build
    manifest, truth, sources = build("/tmp/segs", n_files=60, voices=TUNE_VOICES, programs=TUNE_PROGRAMS, seed=0)
"""

from __future__ import annotations

import csv
import os
import shutil
import struct
import subprocess
import tempfile

import numpy as np
import soundfile as sf

from raydist.audio import decode

RATE = 16000
SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
WORDS = ("yes", "no", "stop", "go", "left", "right", "seven", "zero", "morning", "water", "purple", "seventeen")
# (voice, group): joins inside a group are joins between similar sources
TUNE_VOICES = (("en-us+m3", "male"), ("en-gb+m1", "male"), ("en-us+f3", "female"), ("en-gb+f2", "female"))
HELD_VOICES = (("en-gb-scotland+m7", "male"), ("en-029+m2", "male"), ("en-us+f5", "female"), ("en-gb+f4", "female"))
# (General MIDI program, family)
TUNE_PROGRAMS = (
    (0, "piano"),
    (4, "piano"),
    (24, "guitar"),
    (26, "guitar"),
    (40, "strings"),
    (56, "brass"),
    (73, "pipe"),
)
HELD_PROGRAMS = ((1, "piano"), (25, "guitar"), (42, "strings"), (57, "brass"), (71, "reed"), (74, "pipe"))


def trim(x: np.ndarray, keep_s: float = 0.03, floor: float = 0.01) -> np.ndarray:
    """Cut leading and trailing silence to at most keep_s: a piece's sound begins near its join."""
    loud = np.flatnonzero(np.abs(x) > floor * max(1e-6, float(np.abs(x).max())))
    if not len(loud):
        return x
    keep = int(keep_s * RATE)
    return x[max(0, loud[0] - keep) : loud[-1] + keep]


def speech_piece(voice: str, word: str, rng: np.random.Generator, tmp: str) -> np.ndarray:
    """`word` said 2-4 times by `voice`, at varied speed and pitch, with pauses of 0.1-0.4 s."""
    parts = []
    for k in range(int(rng.integers(2, 5))):
        path = os.path.join(tmp, "w.wav")
        speed, pitch = int(rng.integers(140, 190)), int(rng.integers(35, 65))
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", path, word], check=True)
        if k:
            parts.append(np.zeros(int(rng.uniform(0.1, 0.4) * RATE), np.float32))
        parts.append(trim(decode(path, RATE)[0]))
    return np.concatenate(parts)


def _midi(program: int, notes: list[tuple[int, float, float]]) -> bytes:
    """A one-track Standard MIDI File: program change, then (pitch, duration_s, rest_s) notes at 120 bpm."""
    tpq = 480  # ticks per quarter note: 960 ticks per second at 120 bpm

    def vlq(n: int) -> bytes:
        out = [n & 0x7F]
        while n > 127:
            n >>= 7
            out.insert(0, (n & 0x7F) | 0x80)
        return bytes(out)

    events = vlq(0) + bytes([0xC0, program])
    for pitch, dur, rest in notes:
        events += vlq(0) + bytes([0x90, pitch, 96]) + vlq(int(dur * 960)) + bytes([0x80, pitch, 0])
        events += vlq(int(rest * 960)) + bytes([0xB0, 0x7B, 0]) if rest else b""  # all notes off after a rest
    events += vlq(0) + b"\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq) + b"MTrk" + struct.pack(">I", len(events)) + events


def instrument_piece(program: int, rng: np.random.Generator, tmp: str) -> np.ndarray:
    """A phrase of 4-8 notes around a random centre, some followed by rests of 0.1-0.4 s."""
    centre = int(rng.integers(52, 72))
    notes = [
        (
            centre + int(rng.integers(-7, 8)),
            float(rng.uniform(0.15, 0.45)),
            float(rng.uniform(0.1, 0.4)) * (rng.random() < 0.4),
        )
        for _ in range(int(rng.integers(4, 9)))
    ]
    mid, wav = os.path.join(tmp, "p.mid"), os.path.join(tmp, "p.wav")
    with open(mid, "wb") as f:
        f.write(_midi(program, notes))
    subprocess.run(
        ["fluidsynth", "-ni", "-g", "0.8", "-r", str(RATE), "-F", wav, SOUNDFONT, mid], check=True, capture_output=True
    )
    x = decode(wav, RATE)[0]
    return trim(x / max(1e-6, float(np.abs(x).max())) * 0.5)


def _next_source(sources: list[tuple[str, str, object]], prev, rng: np.random.Generator):
    """Another source than `prev`; with probability 0.4 one of the same group (similar sources)."""
    same = [s for s in sources if prev is not None and s[1] == prev[1] and s != prev]
    if same and rng.random() < 0.4:
        return same[int(rng.integers(len(same)))]
    others = [s for s in sources if s != prev]
    return others[int(rng.integers(len(others)))]


def need_tools() -> None:
    for tool in ("espeak-ng", "fluidsynth"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: apt-get install espeak-ng fluidsynth fluid-soundfont-gm")


def build(root: str, n_files: int, voices, programs, seed: int) -> tuple[str, str, str]:
    """Write n_files concatenations of 3-6 pieces under root/audio; return (manifest.csv,
    truth.csv with one row per piece: id, start_s, end_s, source; sources.csv: each piece alone,
    for training)."""
    need_tools()
    rng = np.random.default_rng(seed)
    sources = [("voice:" + v, g, v) for v, g in voices] + [(f"program:{p}", fam, p) for p, fam in programs]
    os.makedirs(os.path.join(root, "audio"), exist_ok=True)
    os.makedirs(os.path.join(root, "pieces"), exist_ok=True)
    rows, truth, pieces = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n_files):
            prev, t, parts, cid = None, 0.0, [], f"cat{i:03d}"
            for k in range(int(rng.integers(3, 7))):
                src = _next_source(sources, prev, rng)
                if src[0].startswith("voice:"):
                    x = speech_piece(src[2], WORDS[int(rng.integers(len(WORDS)))], rng, tmp)
                else:
                    x = instrument_piece(src[2], rng, tmp)
                truth.append(
                    {"id": cid, "start_s": round(t, 4), "end_s": round(t + len(x) / RATE, 4), "source": src[0]}
                )
                name = f"pieces/{cid}_{k}.wav"
                sf.write(os.path.join(root, name), x, RATE, subtype="PCM_16")
                pieces.append({"id": f"{cid}_{k}", "uri": name, "label": src[0]})
                parts.append(x)
                t += len(x) / RATE
                prev = src
            sf.write(os.path.join(root, "audio", f"{cid}.wav"), np.concatenate(parts), RATE, subtype="PCM_16")
            rows.append({"id": cid, "uri": f"audio/{cid}.wav"})
    return write_csvs(root, {"manifest.csv": rows, "truth.csv": truth, "sources.csv": pieces})


def write_csvs(root: str, tables: dict[str, list[dict]]) -> tuple[str, ...]:
    """Each list of rows as a CSV under root; their paths, in order."""
    out = []
    for name, table in tables.items():
        out.append(os.path.join(root, name))
        with open(out[-1], "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(table[0]))
            w.writeheader()
            w.writerows(table)
    return tuple(out)

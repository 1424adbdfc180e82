"""Labelled corpora for the feature and codec benchmarks (`features`, `codec`), made by programs nobody on the
project wrote: words spoken by espeak-ng voices and short phrases played by General MIDI programs
through fluidsynth. Needs `apt-get install espeak-ng fluidsynth fluid-soundfont-gm`.

Two disjoint splits: TUNE (every setting of the objective was chosen on it) and HELD (voices and
programs never used while tuning; the benchmark's headline numbers).

    from bench.corpora.labelled import build
    manifest = build("/tmp/feat", split="held", seed=0)  # uri, id, kind, word, voice, family, program
"""

from __future__ import annotations

import csv
import itertools
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import soundfile as sf

from bench.corpora.joined import RATE, instrument_piece, trim

WORDS = ("yes", "no", "stop", "go", "left", "right", "seven", "zero", "morning", "water")
VOICES = {
    "tune": ("en-us+m3", "en-gb+m1", "en-us+f3", "en-gb+f2", "en-029+m5", "en-gb-x-rp+f1"),
    "held": ("en-gb-scotland+m7", "en-029+m2", "en-us+f5", "en-gb+f4", "en-us-nyc+m6", "en-gb-x-rp+m4"),
}
SAYINGS = 5  # each word, each voice: this many (speed, pitch) draws
# General MIDI family -> (tune programs, held programs), 0-based program numbers
FAMILIES = {
    "piano": ((0, 2, 4), (1, 5, 6)),
    "chromatic": ((8, 11, 12), (9, 10, 13)),
    "organ": ((16, 19, 21), (17, 20, 22)),
    "guitar": ((24, 26, 29), (25, 27, 30)),
    "bass": ((32, 33, 38), (34, 35, 39)),
    "strings": ((40, 42, 44), (41, 43, 45)),
    "brass": ((56, 58, 61), (57, 60, 62)),
    "reed": ((65, 68, 71), (64, 66, 70)),
}
PHRASES = 10  # phrases per program
FIELDS = ["uri", "id", "kind", "word", "voice", "family", "program"]


def _say(voice: str, word: str, speed: int, pitch: int, path: str) -> None:
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", path, word], check=True)
    x, rate = sf.read(path, dtype="float32")
    from raydist.audio import resample

    sf.write(path, trim(resample(x, rate, RATE)), RATE, subtype="PCM_16")


def _play(program: int, seed: int, path: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        x = instrument_piece(program, np.random.default_rng(seed), tmp)[: int(2.5 * RATE)]
    sf.write(path, x, RATE, subtype="PCM_16")


def build(root: str, split: str, seed: int = 0) -> str:
    """Write the split's clips under root/audio and root/manifest.csv; return the manifest path."""
    for tool in ("espeak-ng", "fluidsynth"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: apt-get install espeak-ng fluidsynth fluid-soundfont-gm")
    os.makedirs(os.path.join(root, "audio"), exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, jobs = [], []
    for word, voice, k in itertools.product(WORDS, VOICES[split], range(SAYINGS)):
        name = f"audio/{word}_{voice.replace('+', '_')}_{k}.wav"
        speed, pitch = int(rng.integers(130, 200)), int(rng.integers(30, 70))
        jobs.append((_say, voice, word, speed, pitch, os.path.join(root, name)))
        rows.append({"uri": name, "id": name, "kind": "speech", "word": word, "voice": voice})
    for family, (tune, held) in FAMILIES.items():
        for program, k in itertools.product(tune if split == "tune" else held, range(PHRASES)):
            name = f"audio/{family}_{program}_{k}.wav"
            jobs.append((_play, program, int(rng.integers(2**31)), os.path.join(root, name)))
            rows.append({"uri": name, "id": name, "kind": "instrument", "family": family, "program": str(program)})
    return _write(root, jobs, rows)


def _write(root: str, jobs: list[tuple], rows: list[dict]) -> str:
    """Run the (function, *args) jobs that write the clips, then root/manifest.csv; return its path."""
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        list(pool.map(lambda j: j[0](*j[1:]), jobs))
    path = os.path.join(root, "manifest.csv")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, restval="")
        w.writeheader()
        w.writerows(rows)
    return path


# More speech to train a codec on (`build_speech`): espeak-ng's named voice variants, none of which
# the TUNE or HELD splits use, saying phrases of 1-5 words drawn from a wider vocabulary.
ACCENTS = ("en-us", "en-gb", "en-029", "en-gb-x-rp")  # the TUNE voices' accents: HELD's other two stay unheard
SPEECH_VOICES = tuple(
    f"{accent}+{variant}"
    for accent, variant in zip(
        itertools.cycle(ACCENTS),
        (
            "adam Alex Andy Annie belinda benjamin caleb david edward john linda max michel paul quincy rob "
            "robert steph zac Lee"
        ).split(),
    )
)
VOCABULARY = WORDS + tuple(
    (
        "one two three four five six eight nine ten hello thank you please open close door window light "
        "music play next back up down house green blue red evening coffee bring today tomorrow weather "
        "cold warm river mountain garden little big happy quickly slowly station train market seventeen "
        "thirty question answer"
    ).split()
)


def build_speech(root: str, utterances: int = 60, seed: int = 0) -> str:
    """Extra training speech for the codec: each SPEECH_VOICES voice says `utterances` phrases of
    1-5 VOCABULARY words at a random speed and pitch. Writes root/audio and root/manifest.csv."""
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed: apt-get install espeak-ng")
    os.makedirs(os.path.join(root, "audio"), exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, jobs = [], []
    for voice, k in itertools.product(SPEECH_VOICES, range(utterances)):
        text = " ".join(rng.choice(VOCABULARY, int(rng.integers(1, 6))))
        name = f"audio/{voice.replace('+', '_')}_{k}.flac"
        jobs.append(
            (_say, voice, text, int(rng.integers(130, 200)), int(rng.integers(30, 70)), os.path.join(root, name))
        )
        rows.append({"uri": name, "id": name, "kind": "speech", "word": text, "voice": voice})
    return _write(root, jobs, rows)

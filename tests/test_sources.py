"""Source segments on real voices and instruments (espeak-ng, fluidsynth + the General MIDI
soundfont; `.ci/run` installs them): where a boundary between two sources lands, and that a pause
or a level jump inside one source is none. Each clip goes through the pipeline's own functions
(decode_batch -> EncodeBatch -> split_tables, as `raydist embed` and `raydist serve` run them)
with a checkpoint trained briefly on the module's own audio and the shipped SegmentConfig."""

from __future__ import annotations

import io
import os
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from raydist.audio import decode
from tests.kit import quick_checkpoint

RATE = 16000
SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
pytestmark = pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("fluidsynth") and os.path.exists(SOUNDFONT)),
    reason="needs apt-get install espeak-ng fluidsynth fluid-soundfont-gm",
)


def _onset(x: np.ndarray) -> int:
    """First sample above 1% of the peak (-40 dB): where the sound begins."""
    return int(np.flatnonzero(np.abs(x) > 0.01 * np.abs(x).max())[0])


def _trim(x: np.ndarray) -> np.ndarray:
    """Leading and trailing silence cut to 20 ms."""
    loud = np.flatnonzero(np.abs(x) > 0.01 * np.abs(x).max())
    keep = int(0.02 * RATE)
    return x[max(0, loud[0] - keep) : loud[-1] + keep]


def say(tmp, voice: str, words: str, pitch: int = 50) -> np.ndarray:
    path = os.path.join(tmp, "say.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", "150", "-w", path, words], check=True)
    return _trim(decode(path, RATE)[0])


def play(tmp, program: int, pitches: list[int], note_s: float = 0.4) -> np.ndarray:
    """A legato phrase of one General MIDI program, peak 0.5."""
    from bench.corpora.joined import _midi

    mid, wav = os.path.join(tmp, "p.mid"), os.path.join(tmp, "p.wav")
    with open(mid, "wb") as f:
        f.write(_midi(program, [(p, note_s, 0.0) for p in pitches]))
    subprocess.run(
        ["fluidsynth", "-ni", "-g", "0.8", "-r", str(RATE), "-F", wav, SOUNDFONT, mid], check=True, capture_output=True
    )
    x = decode(wav, RATE)[0]
    return _trim(x / np.abs(x).max() * 0.5)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.float32)


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("sources"))
    m = {
        "man": say(tmp, "en-us+m3", "seven, seven, seven", pitch=40),
        "woman": say(tmp, "en-us+f3", "morning, morning", pitch=60),
        "water": say(tmp, "en-gb+m1", "water, water"),
        "purple": say(tmp, "en-gb+m1", "purple, purple"),
        "piano": play(tmp, 0, [60, 64, 67, 64, 62, 65]),
        "trumpet": play(tmp, 56, [67, 65, 64, 62, 60, 62]),
    }
    corpus = tmp_path_factory.mktemp("corpus")
    for name, x in m.items():
        sf.write(str(corpus / f"{name}.wav"), x, RATE)
    with open(corpus / "manifest.csv", "w") as f:
        f.write("id,uri\n" + "".join(f"{n},{n}.wav\n" for n in m))
    return m, quick_checkpoint(str(tmp_path_factory.mktemp("ckpt")), str(corpus / "manifest.csv"), steps=200)


@pytest.fixture(scope="module")
def boundaries(material):
    """Interior source-segment boundaries (seconds) of a waveform, as `raydist embed` writes them."""
    from raydist.serve.work import Upload, Worker

    worker = Worker(material[1])

    def run(y: np.ndarray) -> list[float]:
        buf = io.BytesIO()
        sf.write(buf, y, RATE, format="WAV", subtype="FLOAT")
        rows = worker.embed([Upload(buf.getvalue(), frames=True)])[0]["segments"]
        assert rows[0]["start_s"] == 0.0 and rows[-1]["end_s"] == pytest.approx(len(y) / RATE, abs=0.01)
        return [r["start_s"] for r in rows[1:]]

    return run


def test_a_pause_between_two_voices_is_one_boundary_at_the_second_voice_onset(material, boundaries):
    m = material[0]
    y = np.concatenate([m["man"], silence(1.0), m["woman"]])
    onset = (len(m["man"]) + RATE + _onset(m["woman"])) / RATE
    found = boundaries(y)
    assert len(found) == 1, found
    assert abs(found[0] - onset) <= 0.05, (found, onset)


def test_one_voice_saying_two_words_with_a_pause_is_one_segment(material, boundaries):
    m = material[0]
    assert boundaries(np.concatenate([m["water"], silence(0.6), m["purple"]])) == []


def test_a_crossfade_between_two_programs_is_one_boundary_inside_it(material, boundaries):
    m = material[0]
    a, b, fade = m["piano"].copy(), m["trumpet"].copy(), int(0.2 * RATE)
    ramp = np.linspace(0, 1, fade, dtype=np.float32)
    a[-fade:] *= 1 - ramp
    b[:fade] *= ramp
    y = np.zeros(len(a) + len(b) - fade, np.float32)
    y[: len(a)] += a
    y[len(a) - fade :] += b
    found = boundaries(y)
    assert len(found) == 1, found
    assert (len(a) - fade) / RATE <= found[0] <= len(a) / RATE, (found, (len(a) - fade) / RATE, len(a) / RATE)


def test_a_level_jump_within_one_source_is_no_boundary(material, boundaries):
    """The same material twice, the second time 12 dB quieter (or louder): the latents follow the
    level; the segments do not."""
    m = material[0]
    for x in (m["piano"], m["man"]):
        assert boundaries(np.concatenate([x, x * 10 ** (-12 / 20)])) == []
        assert boundaries(np.concatenate([x * 10 ** (-12 / 20), x])) == []

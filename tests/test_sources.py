"""Source segments on real voices and instruments (espeak-ng, fluidsynth + the General MIDI
soundfont; `.ci/run` installs them): where a boundary between two sources lands, and that a pause
or a level jump inside one source is none. Each clip goes through the pipeline's own functions
(decode_batch -> EncodeBatch -> split_tables, as `raydist embed` and `raydist serve` run them)
with a checkpoint trained briefly on the module's own audio and the shipped SegmentConfig.

The material is fixed; how often each case comes out right over random voices, words and
programs and over the benchmark's trained models is measured by `python -m bench segments`
(docs/benchmarks.md#segments)."""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from bench.corpora.joined import SOUNDFONT
from bench.corpora.varied import RATE, crossfade, onset_of, play, say, silence
from tests.kit import quick_checkpoint

pytestmark = pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("fluidsynth") and os.path.exists(SOUNDFONT)),
    reason="needs apt-get install espeak-ng fluidsynth fluid-soundfont-gm",
)


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("sources"))
    m = {
        "man": say(tmp, "en-us+m3", "seven, seven, seven", pitch=30),
        "woman": say(tmp, "en-us+f3", "morning, morning", pitch=80),
        "water": say(tmp, "en-gb+m1", "water, water"),
        "purple": say(tmp, "en-gb+m1", "purple, purple"),
        "piano": play(tmp, 0, [60] * 6),  # one pitch: the crossfade changes the timbre alone
        "trumpet": play(tmp, 56, [60] * 6),
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
    found = boundaries(np.concatenate([m["man"], silence(1.0), m["woman"]]))
    second = (len(m["man"]) + RATE + onset_of(m["woman"])) / RATE
    assert len(found) == 1, found
    assert abs(found[0] - second) <= 0.05, (found, second)


def test_one_voice_saying_two_words_with_a_pause_is_one_segment(material, boundaries):
    m = material[0]
    assert boundaries(np.concatenate([m["water"], silence(0.6), m["purple"]])) == []


def test_a_crossfade_between_two_programs_is_one_boundary_inside_it(material, boundaries):
    m = material[0]
    y, start, end = crossfade(m["piano"], m["trumpet"], 0.2)
    found = boundaries(y)
    assert len(found) == 1 and start <= found[0] <= end, (found, start, end)


def test_a_level_jump_within_one_source_is_no_boundary(material, boundaries):
    """The same material twice, the second time 12 dB quieter (or louder): the latents follow the
    level; the segments do not."""
    m = material[0]
    for x in (m["piano"], m["man"]):
        quiet = x * np.float32(10 ** (-12 / 20))
        assert boundaries(np.concatenate([x, quiet])) == []
        assert boundaries(np.concatenate([quiet, x])) == []

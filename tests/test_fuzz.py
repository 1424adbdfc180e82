"""Hostile bytes: truncated, mutated and random files thrown at the decoder and at the pipeline.
Every case must end as a valid result or a typed error (an error row in the pipeline)."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kit import FORMATS

from raydist.audio import AudioError, decode
from raydist.audio.rates import workable_rate
from raydist.audio.synth import tone
from raydist.config import OutputConfig
from raydist.io.store import read_table
from raydist.pipeline.embed import embed

TARGET = 16000


def _encoded(ext: str, seconds: float = 0.4, channels: int = 2) -> bytes:
    sr = 24000 if ext == "opus" else 22050  # Opus takes 8/12/16/24/48 kHz only
    buf = io.BytesIO()
    x = np.repeat(tone(330, seconds, sr)[:, None], channels, axis=1)
    container, subtype = FORMATS[ext]
    sf.write(buf, x, sr, format=container, subtype=subtype)
    return buf.getvalue()


BASES = {ext: _encoded(ext) for ext in FORMATS}


@st.composite
def hostile(draw) -> bytes:
    """A real file of some format, then truncated, overwritten, spliced or replaced at random."""
    data = bytearray(BASES[draw(st.sampled_from(sorted(BASES)))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "overwrite", "insert", "header", "random"]))
        if kind == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        elif kind == "overwrite" and data:
            at = draw(st.integers(0, len(data) - 1))
            patch = draw(st.binary(min_size=1, max_size=16))
            data[at : at + len(patch)] = patch
        elif kind == "insert":
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "header" and len(data) > 44:  # WAV-style fields: channels, rate, bits
            at = draw(st.sampled_from([22, 24, 28, 32, 34, 40]))
            data[at : at + 4] = struct.pack("<I", draw(st.sampled_from([0, 1, 7, 44101, 2**31 - 1, 2**32 - 1])))
        else:
            data = bytearray(draw(st.binary(max_size=2048)))
    return bytes(data)


def _check(data: bytes) -> str:
    """decode() either gives a valid mono float32 signal or raises a typed AudioError."""
    try:
        wave, info = decode(data, TARGET)
    except AudioError as e:
        assert str(e)  # a message that says what went wrong
        return type(e).__name__
    assert wave.dtype == np.float32 and wave.ndim == 1 and len(wave) > 0
    assert np.isfinite(wave).all()
    assert info.channels >= 1 and info.sample_rate > 0
    return "ok"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile())
def test_decoder_survives_hostile_bytes(data):
    _check(data)


@pytest.mark.parametrize("ext", sorted(BASES))
def test_every_truncation_point_of_a_real_file(ext):
    data = BASES[ext]
    outcomes = {_check(data[:cut]) for cut in np.linspace(0, len(data), 25).astype(int)}
    assert "ok" in outcomes and outcomes - {"ok"}  # the whole file decodes; some cuts must fail cleanly


def test_odd_and_extreme_rates_are_bounded():
    assert [workable_rate(r, TARGET) for r in (8000, 11025, 22050, 44100, 48000, 192000)] == [
        8000,
        11025,
        22050,
        44100,
        48000,
        192000,
    ]
    odd = workable_rate(44101, TARGET)  # a rate with no small ratio to 16 kHz is rounded, by < 0.1%
    assert abs(odd - 44101) / 44101 < 1e-3 and TARGET // np.gcd(odd, TARGET) <= 1000
    buf = io.BytesIO()
    sf.write(buf, tone(1000, 0.5, 44101), 44101, format="WAV")
    wave, info = decode(buf.getvalue(), TARGET)
    assert info.sample_rate == 44101 and abs(len(wave) - 8000) <= 8


@pytest.mark.slow
def test_pipeline_turns_hostile_files_into_rows_or_error_rows(ray_session, checkpoint, tmp_path):
    rng = np.random.default_rng(7)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    good = []
    for i, ext in enumerate(sorted(BASES)):
        (corpus / f"good{i}.{ext}").write_bytes(BASES[ext])
        good.append(f"good{i}.{ext}")
    for i in range(20):
        ext = sorted(BASES)[i % len(BASES)]
        data = bytearray(BASES[ext])
        if i % 3 == 0:
            data = data[: rng.integers(0, len(data))]
        elif i % 3 == 1:
            at = rng.integers(0, len(data) - 64)
            data[at : at + 64] = rng.bytes(64)
        else:
            data = bytearray(rng.bytes(int(rng.integers(0, 4096))))
        (corpus / f"fuzz{i:02d}.{ext}").write_bytes(bytes(data))
    summary = embed(
        [str(corpus)], str(tmp_path / "out"), checkpoint, output=OutputConfig(rows_per_file=50), progress=False
    )
    assert summary.ok + summary.failed == summary.inputs == len(good) + 20
    clips = read_table(str(tmp_path / "out"), "clips").column("id").to_pylist()
    errors = read_table(str(tmp_path / "out"), "errors").to_pylist()
    ids = clips + [e["id"] for e in errors]
    assert sorted(ids) == sorted(p.name for p in corpus.iterdir())  # each input exactly once
    assert set(good) <= set(clips)
    for e in errors:
        assert e["stage"] in ("read", "decode", "validate", "encode") and e["error_type"] and e["message"]

"""Compression: quantisation, mel inversion, quality metrics, Ray round trip, generation."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch
from kit import dominant_freq, quick_checkpoint

from raydist.audio import LogMel, decode
from raydist.audio.synth import harmonic, tone
from raydist.codec.format import LEVELS, CodecError, dequantize, quantize, safe_relpath
from raydist.codec.inversion import MelInverter, latents_to_audio
from raydist.config import FeatureConfig
from raydist.demo.corpus import write_corpus
from raydist.eval.quality import compare, evaluate_pairs, si_sdr
from raydist.io.store import RunStore, read_table
from raydist.model.checkpoint import load_model
from raydist.pipeline.compress import codec_report, compress
from raydist.pipeline.decompress import decompress


def test_quantisation_error_is_within_half_a_step():
    x = np.random.default_rng(0).standard_normal((40, 32)).astype(np.float32) * [0.1 * (d + 1) for d in range(32)]
    c = quantize(x)
    y = dequantize(c.codes, c.scale, c.n_frames)
    step = np.abs(x).max(0) / LEVELS
    assert (np.abs(x - y) <= step / 2 + 1e-3 * np.abs(x).max(0)).all()  # + float16 scale rounding
    assert c.payload_bytes == 40 * 32 + 2 * 32
    zeros = quantize(np.zeros((3, 4), np.float32))
    assert (dequantize(zeros.codes, zeros.scale, 3) == 0).all()


@pytest.mark.parametrize(
    "clip_id, path",
    [
        ("a/b.wav", "a/b.flac"),
        ("../../etc/passwd", "etc/passwd.flac"),
        ("/abs/x.mp3", "abs/x.flac"),
        ("..", "clip.flac"),
        ("x.y", "x.y.flac"),
    ],
)
def test_output_paths_cannot_escape_the_root(clip_id, path):
    assert safe_relpath(clip_id, "flac") == path


def test_si_sdr_closed_forms():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(16000)
    noise = rng.standard_normal(16000)
    noise -= noise @ ref / (ref @ ref) * ref  # orthogonal to ref
    noise *= np.linalg.norm(ref) / np.linalg.norm(noise) * 10 ** (-20 / 20)  # 20 dB below
    assert si_sdr(ref, ref + noise) == pytest.approx(20.0, abs=0.01)
    assert si_sdr(ref, 0.1 * (ref + noise)) == pytest.approx(20.0, abs=0.01)  # scale-invariant


@pytest.mark.parametrize("signal", [tone(500.0, 1.0, 16000), harmonic(220.0, 1.5, 16000)])
def test_mel_inversion_keeps_the_pitch_and_nnls_beats_inverse_mel_scale(signal):
    cfg = FeatureConfig()
    logmel = LogMel(cfg)(torch.from_numpy(signal))
    y = MelInverter(cfg)(logmel, len(signal)).numpy()
    baseline = MelInverter(cfg, method="torchaudio")(logmel, len(signal)).numpy()
    assert len(y) == len(signal)
    assert abs(dominant_freq(y, 16000) - dominant_freq(signal, 16000)) < 40
    ours, theirs = compare(signal, y)["logmel_l1"], compare(signal, baseline)["logmel_l1"]
    assert ours < 0.5 and ours < 0.5 * theirs, (ours, theirs)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("codec-corpus"))
    manifest = write_corpus(root, n_clips=10, seed=3)
    return root, manifest


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    return quick_checkpoint(str(tmp_path_factory.mktemp("trained")), corpus[1], steps=200)


@pytest.mark.slow
def test_compress_decompress_round_trip(ray_session, corpus, trained, checkpoint, tmp_path):
    root, manifest = corpus
    out = str(tmp_path / "codes")
    summary = compress([manifest], out, trained)
    assert (summary.ok, summary.failed) == (10, 0)
    codes = read_table(out, "codes")
    assert codes.num_rows == 10 and sorted(codes.column("id").to_pylist()) == [f"clip{i:04d}" for i in range(10)]

    # the report is the bytes on disk
    report = codec_report(out)
    files = RunStore(out).committed_files("codes")
    on_disk = sum(os.path.getsize(p) for p in files)
    assert report["file_bytes"] == on_disk
    assert report["file_kbps"] == pytest.approx(on_disk * 8 / report["audio_s"] / 1000)
    payload = sum(len(c) for c in codes.column("codes").to_pylist()) + 2 * 32 * 10
    assert report["payload_bytes"] == payload == summary.payload_bytes
    assert 3.0 < report["payload_kbps"] < 3.5  # 12.5 frames/s x 32 dims x 8 bits = 3.2 kbps + scales
    sources = sum(
        os.path.getsize(os.path.join(root, u)) for u in (r["uri"].split(root + "/")[-1] for r in codes.to_pylist())
    )
    assert report["ratio_vs_source"] == pytest.approx(sources / on_disk)
    assert report["ratio_vs_pcm16"] > 20

    # decompress: one file per clip at the original rate and duration (within one hop)
    dec = str(tmp_path / "decoded")
    result = decompress(out, trained, dec, fmt="flac")
    assert result.ok == 10 and not result.failed
    for row in codes.to_pylist():
        data, sr = sf.read(os.path.join(dec, row["id"] + ".flac"))
        assert sr == row["sample_rate"]
        assert abs(len(data) / sr - row["duration_s"]) <= 0.01
        assert np.isfinite(data).all()

    # decoded audio beats decoding all-zero latents on log-mel distance
    m = load_model(trained)
    better = 0
    for row in codes.to_pylist():
        original, _ = decode(row["uri"], 16000)
        decoded, _ = decode(os.path.join(dec, row["id"] + ".flac"), 16000)
        zero = latents_to_audio(m, np.zeros((row["n_frames"], 32), np.float32), row["num_samples"])
        better += compare(original, decoded)["logmel_l1"] < compare(original, zero)["logmel_l1"]
    assert better == 10

    # a different checkpoint is refused; a rerun does nothing
    with pytest.raises(CodecError, match="decode with the checkpoint that compressed it"):
        decompress(out, checkpoint, str(tmp_path / "nope"))
    again = compress([manifest], out, trained)
    assert (again.ok, again.already_done) == (0, 10)

    report = evaluate_pairs([manifest], [dec])
    assert report["matched"] == 10 and report["mean"]["logmel_l1"] < 3.0
    json.dumps(report)

    # one tampered row fails alone, named, with its cause (a deterministic error: not retried)
    bad_set = tmp_path / "tampered"
    shutil.copytree(out, bad_set)
    (part,) = RunStore(str(bad_set)).committed_files("codes")
    rows = pq.read_table(part).to_pylist()
    rows[3]["scale"] = [float("nan")] * len(rows[3]["scale"])
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(part)), part)
    result = decompress(str(bad_set), trained, str(tmp_path / "decoded2"))
    assert result.ok == 9 and [i for i, _ in result.failed] == [rows[3]["id"]]
    assert "CodecError" in result.failed[0][1] and "non-finite" in result.failed[0][1]
    assert f"1 failed\n  {rows[3]['id']}: CodecError" in result.line()


def test_generate_and_interpolate(trained, corpus, tmp_path):
    from raydist.codec.generate import interpolate, sample

    m = load_model(trained)
    paths = sample(m, str(tmp_path / "gen"), n=3, seconds=1.5)
    assert len(paths) == 3
    for p in paths:
        x, sr = sf.read(p)
        assert sr == 16000 and len(x) == 24000 and np.isfinite(x).all() and np.abs(x).max() > 0
    a = os.path.join(corpus[0], "audio", "clip0000.wav")
    b = os.path.join(corpus[0], "audio", "clip0001.wav")
    steps = interpolate(m, a, b, str(tmp_path / "interp"), steps=4)
    assert len(steps) == 4 and all(os.path.exists(p) for p in steps)


def test_decoder_output_tracks_the_input_pitch(trained):
    m = load_model(trained)
    x = harmonic(330.0, 1.5, 16000)
    from raydist.embedding.encode import encode_many

    (lat,) = encode_many(m, [x])
    y = latents_to_audio(m, lat.mean, len(x))
    assert len(y) == len(x) and np.isfinite(y).all()
    assert compare(x, y)["logmel_l1"] < compare(x, np.zeros_like(x) + 1e-6)["logmel_l1"]


def test_byte_arithmetic_is_one_formula():
    from raydist.codec.format import payload_bytes, pcm16_bytes

    c = quantize(np.ones((25, 8), np.float32))
    assert c.payload_bytes == payload_bytes(25, 8) == len(c.codes) + 2 * 8 == 216
    frames, dims = np.array([1, 25, 100]), np.array([8, 8, 32])
    assert payload_bytes(frames, dims).tolist() == [8 + 16, 200 + 16, 3200 + 64]
    assert pcm16_bytes(1.5, 44100, 2) == 2 * 1.5 * 44100 * 2
    assert pcm16_bytes(np.array([1.0, 2.0]), np.array([8000, 16000]), np.array([1, 2])).tolist() == [16000, 128000]


SUPPORTED_RATES = (1000, 4000, 8000, 44101, 96000, 384000, 768000)  # raydist.audio.rates: MIN_RATE..MAX_RATE


@pytest.mark.slow
def test_every_rate_the_decoder_takes_compresses_and_decompresses(ray_session, checkpoint, tmp_path):
    """Whatever compress accepts, decompress gives back: each supported rate, mono and stereo, at its
    own rate, channel-mixed length and duration (caught: 4 kHz compressed, then was refused)."""
    from kit import write_tone

    from raydist.audio.rates import MAX_RATE, MIN_RATE

    assert (SUPPORTED_RATES[0], SUPPORTED_RATES[-1]) == (MIN_RATE, MAX_RATE)
    src = tmp_path / "src"
    for sr in SUPPORTED_RATES:
        for ch in (1, 2):
            write_tone(str(src / f"r{sr}_c{ch}.wav"), freq=min(300.0, sr / 4), seconds=0.7, sr=sr, channels=ch)
    out, dec = str(tmp_path / "codes"), str(tmp_path / "decoded")
    summary = compress([str(src)], out, checkpoint, progress=False)
    assert (summary.ok, summary.failed) == (2 * len(SUPPORTED_RATES), 0)
    result = decompress(out, checkpoint, dec)
    assert result.failed == [] and result.ok == 2 * len(SUPPORTED_RATES)
    for sr in SUPPORTED_RATES:
        for ch in (1, 2):
            data, rate = sf.read(os.path.join(dec, f"r{sr}_c{ch}.wav"))
            assert rate == sr and data.ndim == 1 and np.isfinite(data).all()
            assert len(data) == round(0.7 * sr), (sr, len(data))

"""Audio front end: decoding every format, mono mixing, resampling, log-mel, typed errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
import torch
from kit import dominant_freq, write_tone

from raydist.audio import DecodeError, EmptyAudioError, LogMel, NonFiniteAudioError, ReadError, decode, resample
from raydist.audio.features import num_frames
from raydist.audio.synth import tone
from raydist.config import FeatureConfig


@pytest.mark.parametrize(
    "ext, sr, channels",
    [("wav", 44100, 2), ("flac", 22050, 1), ("ogg", 32000, 2), ("opus", 48000, 1), ("mp3", 44100, 2), ("wav", 8000, 6)],
)
def test_each_format_decodes_to_mono_at_model_rate(tmp_path, ext, sr, channels):
    path = write_tone(str(tmp_path / f"t.{ext}"), freq=1000, seconds=1.0, sr=sr, channels=channels)
    wave, info = decode(path, 16000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert (info.sample_rate, info.channels) == (sr, channels)
    assert abs(len(wave) - 16000) <= 16000 * 0.01, len(wave)  # lossy codecs may pad a little
    assert abs(dominant_freq(wave, 16000) - 1000) < 5
    assert 0.3 < np.abs(wave).max() <= 1.0


@pytest.mark.parametrize("sr", [8000, 11025, 44100, 96000, 192000])
def test_resampling_preserves_tone_frequency(sr):
    y = resample(tone(440.0, 2.0, sr), sr, 16000)
    assert len(y) == 32000
    assert abs(dominant_freq(y, 16000) - 440.0) < 1.0


def test_int_pcm_is_normalised_to_float():
    x = (tone(440, 0.5, 16000) * 32767).astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, x, 16000, format="WAV", subtype="PCM_16")
    wave, _ = decode(buf.getvalue(), 16000)
    np.testing.assert_allclose(wave, x / 32768.0, atol=1e-6)


def test_stereo_is_mixed_to_mono():
    left, right = tone(300, 1, 16000), tone(500, 1, 16000)
    buf = io.BytesIO()
    sf.write(buf, np.stack([left, right], 1), 16000, format="WAV", subtype="FLOAT")
    wave, info = decode(buf.getvalue(), 16000)
    assert info.channels == 2
    np.testing.assert_allclose(wave, (left + right) / 2, atol=1e-6)


@pytest.mark.parametrize("sr", [44100, 48000, 22050, 8000])
def test_blockwise_decode_equals_whole_signal_resampling(sr):
    x = np.random.default_rng(0).standard_normal(int(sr * 5.3)).astype(np.float32) * 0.1
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype="FLOAT")
    wave, _ = decode(buf.getvalue(), 16000, block_seconds=0.7)
    np.testing.assert_allclose(wave, resample(x, sr, 16000), atol=1e-6)


def test_errors_are_typed_and_name_the_input(tmp_path):
    with pytest.raises(DecodeError, match="not-audio"):
        decode(b"this is plain text, not audio" * 10, 16000, name="not-audio")
    with pytest.raises(ReadError, match="missing.wav"):
        decode(str(tmp_path / "missing.wav"), 16000)
    empty = io.BytesIO()
    sf.write(empty, np.zeros((0, 1), np.float32), 16000, format="WAV")
    with pytest.raises(EmptyAudioError):
        decode(empty.getvalue(), 16000)
    bad = tone(440, 0.2, 16000)
    bad[[5, 9, 100]] = [np.nan, np.inf, -np.inf]
    buf = io.BytesIO()
    sf.write(buf, bad, 16000, format="WAV", subtype="FLOAT")
    with pytest.raises(NonFiniteAudioError, match="3 NaN or infinite"):
        decode(buf.getvalue(), 16000)


def test_truncated_file_is_an_error_not_a_crash(tmp_path):
    path = write_tone(str(tmp_path / "t.flac"), seconds=2.0)
    data = open(path, "rb").read()
    try:
        wave, _ = decode(data[: len(data) // 3], 16000)
        assert len(wave) < 32000  # libsndfile may return the intact prefix
    except DecodeError:
        pass


def test_logmel_of_a_tone_peaks_in_the_right_band():
    cfg = FeatureConfig()
    mel = LogMel(cfg)(torch.from_numpy(tone(1000.0, 1.0, 16000)))
    assert list(mel.shape) == [cfg.n_mels, num_frames(16000, cfg)], mel.shape
    peak = int(mel[:, 10:-10].mean(1).argmax())
    fb = LogMel(cfg).mel.mel_scale.fb  # (freq bins, n_mels) filterbank
    freqs = torch.linspace(0, cfg.sample_rate / 2, fb.shape[0])
    centre = float(freqs[fb[:, peak].argmax()])
    assert abs(centre - 1000.0) < 100.0, (peak, centre)


def test_logmel_equals_torchaudio_melspectrogram():
    cfg = FeatureConfig()
    x = torch.randn(3, 16000 + 123)
    lm = LogMel(cfg)
    reference = torch.log(torch.clamp(lm.mel(x), min=cfg.log_floor))  # torchaudio's own |z|^2 path
    torch.testing.assert_close(lm(x), reference, atol=1e-4, rtol=0)


def test_logmel_frame_ranges_equal_the_whole():
    cfg = FeatureConfig()
    x = torch.randn(16000 * 3 + 77)
    lm = LogMel(cfg)
    whole = lm(x)
    n = whole.shape[-1]
    pieces = torch.cat([lm.frames(x, 0, 37), lm.frames(x, 37, 200), lm.frames(x, 200, n)], dim=-1)
    torch.testing.assert_close(pieces, whole, atol=1e-5, rtol=0)


def test_silence_hits_the_log_floor_not_minus_infinity():
    mel = LogMel(FeatureConfig())(torch.zeros(16000))
    assert torch.isfinite(mel).all()
    assert float(mel.max()) == pytest.approx(np.log(1e-5), abs=1e-4)

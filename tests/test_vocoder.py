"""The learned waveform decoder: losses against closed forms, the codec's quantiser in torch,
training lowers the loss, checkpoints with and without a vocoder, compress/decompress through it,
and the Ray Train stage with resume."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import soundfile as sf
import torch
from kit import quick_checkpoint

from raydist.audio.synth import harmonic
from raydist.codec.format import dequantize, quantize
from raydist.codec.inversion import latents_to_audio, latents_to_audio_batch
from raydist.config import FeatureConfig, LossConfig, TrainConfig, VocoderConfig
from raydist.demo.corpus import write_corpus
from raydist.io.store import read_table
from raydist.model.checkpoint import CheckpointError, load_model, read_checkpoint, save_checkpoint
from raydist.model.vocoder import Vocoder, quantize_like_codec, stft_loss
from raydist.train.step import vocoder_step

TINY = VocoderConfig(dim=32, layers=2)
TINY_GAN = VocoderConfig(dim=32, layers=2, adversarial=0.05)


def test_stft_loss_closed_forms():
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 16000)).astype(np.float32))
    assert stft_loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    # half the amplitude: spectral convergence 0.5 and |log S - log S/2| = log 2 in every bin
    assert stft_loss(0.5 * x, x).item() == pytest.approx(0.5 + math.log(2), abs=2e-3)


def test_codec_quantiser_in_torch_matches_the_stored_codes():
    mean = np.random.default_rng(1).standard_normal((3, 40, 32)).astype(np.float32)  # (B, L, D)
    got = quantize_like_codec(torch.from_numpy(mean).transpose(1, 2)).transpose(1, 2).numpy()
    for b in range(3):
        c = quantize(mean[b])
        np.testing.assert_allclose(got[b], dequantize(c.codes, c.scale, c.n_frames), rtol=1e-6, atol=1e-7)


def test_output_length_follows_the_mel_frames():
    f = FeatureConfig()
    from raydist.config import ModelConfig

    voc = Vocoder(TINY, f, ModelConfig(hidden=16))
    y = voc(torch.zeros(2, 64, 101) - 5.0, torch.zeros(2, 32, 13))
    assert y.shape == (2, 100 * f.hop_length)
    with pytest.raises(ValueError, match="conditioned on latents"):
        voc(torch.zeros(1, 64, 101))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("voc-corpus"))
    return root, write_corpus(root, n_clips=10, seed=5)


@pytest.fixture(scope="module")
def vae(corpus, tmp_path_factory):
    return quick_checkpoint(str(tmp_path_factory.mktemp("voc-vae")), corpus[1], steps=120)


def test_a_few_steps_lower_the_stft_loss(vae):
    m = load_model(vae)
    torch.manual_seed(0)
    voc = Vocoder(TINY, m.features, m.vae.cfg)
    wave = torch.from_numpy(np.stack([harmonic(f, 1.0, 16000) for f in (220.0, 330.0, 440.0, 550.0)])).float()
    cfg = TrainConfig(lr=3e-3)
    opt = torch.optim.Adam(voc.parameters(), lr=cfg.lr)
    first = [vocoder_step(voc, m.vae, m.logmel, wave, opt, cfg, TINY)["stft"].item() for _ in range(3)]
    for _ in range(40):
        last = vocoder_step(voc, m.vae, m.logmel, wave, opt, cfg, TINY)["stft"].item()
    assert last < 0.8 * np.mean(first)


def test_adversarial_step_updates_the_discriminator_and_adds_its_terms(vae):
    from raydist.model.vocoder import Discriminator, discriminator_loss

    m = load_model(vae)
    torch.manual_seed(0)
    voc, disc = Vocoder(TINY_GAN, m.features, m.vae.cfg), Discriminator()
    wave = torch.from_numpy(np.stack([harmonic(f, 1.0, 16000) for f in (220.0, 440.0)])).float()
    cfg = TrainConfig()
    opt, disc_opt = torch.optim.Adam(voc.parameters()), torch.optim.Adam(disc.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in disc.parameters()]
    terms = vocoder_step(voc, m.vae, m.logmel, wave, opt, cfg, TINY_GAN, disc=disc, disc_opt=disc_opt)
    assert {"adversarial", "feature_matching", "disc"} <= set(terms)
    assert all(torch.isfinite(v) for v in terms.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, disc.parameters()))
    # hinge loss closed form: a discriminator that outputs 0 everywhere scores 1 + 1 = 2
    for p in disc.parameters():
        torch.nn.init.zeros_(p)
    assert discriminator_loss(disc, wave, wave).item() == pytest.approx(2.0)


def test_checkpoint_with_a_vocoder_round_trips_and_keeps_the_vae_identity(vae, tmp_path):
    state, _ = read_checkpoint(vae)
    m = load_model(vae)
    assert m.vocoder is None
    voc = Vocoder(TINY, m.features, m.vae.cfg).eval()
    path = save_checkpoint(
        str(tmp_path), m.vae, m.features, LossConfig.from_dict(state["loss_config"]), 7, 1, vocoder=voc, stage="vocoder"
    )
    m2 = load_model(path)
    assert m2.vocoder is not None and m2.checkpoint_id != m.checkpoint_id and m2.vae_id == m.vae_id
    z = np.random.default_rng(0).standard_normal((13, 32)).astype(np.float32)
    with torch.inference_mode():
        logmel = m.vae.decode(torch.from_numpy(z.T)[None], 101)
        expected = voc(logmel, torch.from_numpy(z.T)[None])[0].numpy()
    np.testing.assert_allclose(latents_to_audio(m2, z, 16000), np.clip(expected, -1, 1), atol=1e-5)
    # batched decoding equals one clip at a time, across different lengths
    zs = [z, z[:9], z * 0.5]
    batch = latents_to_audio_batch(m2, zs, [16000, 10000, 16000])
    for zi, n, y in zip(zs, [16000, 10000, 16000], batch):
        np.testing.assert_allclose(y, latents_to_audio(m2, zi, n), atol=1e-5)
    # weights that do not fit the config are refused
    state2, _ = read_checkpoint(path)
    state2["vocoder_config"]["dim"] = 48
    torch.save(state2, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="vocoder weights do not match"):
        load_model(str(tmp_path / "bad.pt"))


@pytest.mark.slow
def test_vocoder_stage_on_ray_train_resumes_and_decompresses(ray_session, corpus, vae, checkpoint, tmp_path):
    from raydist.pipeline.compress import compress
    from raydist.pipeline.decompress import decompress
    from raydist.train.trainer import TrainError, train

    root, manifest = corpus
    out = str(tmp_path / "voc")
    cfg = TrainConfig(workers=2, epochs=1, batch_size=4, val_fraction=0.2, checkpoint_every=1000)
    with pytest.raises(TrainError, match="not a raydist checkpoint|cannot read"):
        train([manifest], out, cfg, vocoder_of=str(tmp_path / "missing.pt"))
    first = train([manifest], out, cfg, vocoder_of=vae, vocoder_cfg=TINY_GAN)  # DDP over vocoder and discriminator
    assert first.metrics["epoch"] == 1 and math.isfinite(first.metrics["val_stft"])
    more = TrainConfig(**{**cfg.to_dict(), "epochs": 2})
    resumed = train([manifest], out, more, resume=True, vocoder_of=vae, vocoder_cfg=TINY_GAN)
    assert resumed.metrics["epoch"] == 2 and resumed.resumed_at == [first.metrics["step"]]
    assert resumed.metrics["step"] == 2 * first.metrics["step"]
    m = load_model(resumed.model_uri)
    assert m.vocoder is not None and m.vae_id == load_model(vae).vae_id
    assert "discriminator" in read_checkpoint(resumed.model_uri)[0]  # GAN training can go on from it

    # codes made with the VAE alone decode with the checkpoint that adds the vocoder
    codes = str(tmp_path / "codes")
    assert compress([manifest], codes, vae, progress=False).ok == 10
    dec = str(tmp_path / "decoded")
    result = decompress(codes, resumed.model_uri, dec, progress=False)
    assert result.ok == 10 and not result.failed
    for row in read_table(codes, "codes").to_pylist():
        data, sr = sf.read(os.path.join(dec, row["id"] + ".wav"))
        assert sr == row["sample_rate"] and abs(len(data) / sr - row["duration_s"]) <= 0.01
        assert np.isfinite(data).all()
    from raydist.codec.format import CodecError

    with pytest.raises(CodecError, match="with another VAE"):
        decompress(codes, checkpoint, str(tmp_path / "nope"), progress=False)


def test_in_process_batches_count_steps_and_passes():
    from raydist.train.local import batches

    x = torch.arange(10.0)[:, None]
    cfg = TrainConfig(workers=1, batch_size=4, epochs=2)
    got = [(s, e, len(b)) for s, e, b in batches(x, cfg)]
    # 3 batches per pass (4, 4, 2); the pass counts once its last batch is taken
    assert got == [(0, 0, 4), (1, 0, 4), (2, 1, 2), (3, 1, 4), (4, 1, 4), (5, 2, 2)]
    assert [s for s, _, _ in batches(x, cfg, steps=4)] == [0, 1, 2, 3]
    seen = torch.cat([b for _, _, b in batches(x, cfg, steps=3)])
    assert sorted(seen.flatten().tolist()) == list(range(10))  # one pass holds every window once


def test_in_process_vocoder_trainer_saves_both_networks(corpus, vae, tmp_path):
    from raydist.train.local import train_vocoder_local

    cfg = TrainConfig(workers=1, batch_size=4, val_fraction=0.0)
    path = train_vocoder_local([corpus[1]], vae, str(tmp_path), cfg, TINY, steps=2)
    state, _ = read_checkpoint(path)
    assert (state["stage"], state["step"]) == ("vocoder", 2) and "discriminator" not in state
    m = load_model(path)
    assert m.vocoder is not None and m.vocoder.cfg == TINY and m.vae_id == load_model(vae).vae_id

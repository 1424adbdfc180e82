"""The VAE: KL closed form, reparameterisation, shapes, chunked encoding, metrics, checkpoints."""

from __future__ import annotations

import io
import math
import os
import pickle

import numpy as np
import pytest
import torch

from raydist.audio import LogMel
from raydist.audio.features import num_frames
from raydist.config import FeatureConfig, LossConfig, ModelConfig
from raydist.embedding.encode import encode_equal, encode_long, encode_many
from raydist.embedding.features import scene_embedding
from raydist.model.checkpoint import CheckpointError, LoadedModel, load_model, read_checkpoint, save_checkpoint
from raydist.model.losses import beta_at, elbo_terms, gaussian_kl, reparameterize
from raydist.model.metrics import active_dims, pca_components
from raydist.model.vae import AudioVAE, receptive_field


def test_kl_matches_closed_form():
    mean = torch.tensor([0.0, 1.0, -2.0, 0.5])
    logvar = torch.tensor([0.0, 0.0, math.log(4.0), math.log(0.25)])
    # KL(N(m, s^2) || N(0, 1)) = log(1/s) + (s^2 + m^2) / 2 - 1/2
    expected = [0.0, 0.5, -math.log(2) + (4 + 4) / 2 - 0.5, math.log(2) + (0.25 + 0.25) / 2 - 0.5]
    torch.testing.assert_close(gaussian_kl(mean, logvar), torch.tensor(expected))


def test_reparameterization_gives_gradients_to_mean_and_logvar():
    mean = torch.zeros(3, 4, 5, requires_grad=True)
    logvar = torch.zeros(3, 4, 5, requires_grad=True)
    z = reparameterize(mean, logvar)
    z.pow(2).sum().backward()
    assert mean.grad.abs().sum() > 0 and logvar.grad.abs().sum() > 0


def test_reparameterization_has_the_posterior_moments():
    torch.manual_seed(0)
    mean, logvar = torch.full((200_000,), 1.5), torch.full((200_000,), math.log(0.09))
    z = reparameterize(mean, logvar)
    assert abs(float(z.mean()) - 1.5) < 0.01 and abs(float(z.std()) - 0.3) < 0.01


def test_free_bits_clamp_only_the_penalty():
    mean = torch.zeros(2, 4, 10)
    logvar = torch.zeros(2, 4, 10)
    x = torch.zeros(2, 8, 80)
    terms = elbo_terms(x, x, mean, logvar, free_bits=0.5)
    assert float(terms["kl"]) == 0.0
    assert float(terms["kl_penalty"]) == pytest.approx(4 * 0.5 * 10 / 80)
    assert float(terms["recon"]) == 0.0


def test_kl_warmup_ramps_linearly():
    assert [beta_at(s, 0.1, 100) for s in (0, 50, 100, 500)] == [0.0, 0.05, 0.1, 0.1]
    assert beta_at(0, 0.1, 0) == 0.1


@pytest.mark.parametrize("frames, latents", [(1, 1), (8, 1), (9, 2), (100, 13), (501, 63), (1000, 125)])
def test_shapes_line_up_for_any_length(frames, latents):
    model = AudioVAE(ModelConfig(hidden=16))
    out = model(torch.randn(2, 64, frames))
    assert list(out["mean"].shape) == [2, 32, latents], out["mean"].shape
    assert list(out["logvar"].shape) == [2, 32, latents]
    assert list(out["recon"].shape) == [2, 64, frames]
    assert list(model.decode(out["z"], frames).shape) == [2, 64, frames]


def test_default_latent_rate_is_12_5_per_second():
    fc, mc = FeatureConfig(), ModelConfig()
    assert fc.frame_rate / mc.downsample == 12.5


def _loaded(hidden=16) -> LoadedModel:
    torch.manual_seed(0)
    fc = FeatureConfig()
    return LoadedModel(AudioVAE(ModelConfig(hidden=hidden)).eval(), LogMel(fc), fc, "test", 0, "test")


def test_chunked_encoding_equals_whole_file_encoding():
    m = _loaded()
    wave = np.random.default_rng(1).standard_normal(16000 * 30 + 555).astype(np.float32) * 0.1
    whole = encode_equal(m, torch.from_numpy(wave)[None])[0]
    for chunk in (7, 40, 100):
        part = encode_long(m, torch.from_numpy(wave), chunk=chunk)
        assert part.mean.shape == whole.mean.shape == (376, 32)
        np.testing.assert_allclose(part.mean, whole.mean, atol=1e-4)
        np.testing.assert_allclose(part.logvar, whole.logvar, atol=1e-4)
        np.testing.assert_allclose(part.energy, whole.energy, atol=1e-5)
        np.testing.assert_allclose(part.cepstra, whole.cepstra, atol=1e-4)
        np.testing.assert_allclose(part.early, whole.early, atol=1e-4)
        np.testing.assert_allclose(part.mel_energy, whole.mel_energy, atol=1e-5)
        np.testing.assert_allclose(part.bands, whole.bands, atol=1e-5)
    assert whole.cepstra.shape == (376, 12) and whole.early.shape == (376, 16)
    assert whole.mel_energy.shape == (num_frames(len(wave), m.features),)


def test_receptive_field_bounds_the_influence():
    m = _loaded()
    rf = receptive_field(m.vae)
    x = torch.randn(1, 64, 400)
    base, _ = m.vae.encode(x)
    y = x.clone()
    y[..., 200] += 10.0  # latent frame 25
    moved, _ = m.vae.encode(y)
    changed = ((moved - base).abs().amax(1)[0] > 0).nonzero().flatten()
    assert int(changed.min()) >= 25 - rf and int(changed.max()) <= 25 + rf, (changed, rf)


def test_encode_many_groups_equal_lengths_and_matches_single_encoding():
    m = _loaded()
    rng = np.random.default_rng(2)
    waves = [rng.standard_normal(n).astype(np.float32) for n in (16000, 8000, 16000, 12345)]
    together = encode_many(m, waves)
    for w, lat in zip(waves, together):
        alone = encode_many(m, [w])[0]
        np.testing.assert_allclose(lat.mean, alone.mean, atol=1e-5)
    assert scene_embedding(together[0].mean).shape == (64,)
    assert scene_embedding(together[0].mean, together[0].early).shape == (64 + 32,)


def test_early_features_are_the_first_stage_averaged_over_each_latent_frame():
    m = _loaded()
    wave = np.random.default_rng(3).standard_normal(16000 + 123).astype(np.float32) * 0.1
    lat = encode_equal(m, torch.from_numpy(wave)[None])[0]
    with torch.inference_mode():
        x = m.vae.normalize(m.logmel(torch.from_numpy(wave))[None])
        frames = x.shape[-1]
        assert frames == 101  # -> 13 latent frames, the last padded with 3 zero mel frames
        x = torch.nn.functional.pad(x, (0, 13 * 8 - frames))
        stage = m.vae.encoder.net[1](m.vae.encoder.net[0](x))[0].numpy()  # input conv, one residual block
    assert lat.early.shape == (13, 16)
    for j in (0, 6, 12):
        np.testing.assert_allclose(lat.early[j], stage[:, 8 * j : 8 * j + 8].mean(1), atol=1e-5)


def test_clip_embedding_is_mean_and_std_of_latents_then_of_first_stage():
    mean = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]], np.float32)
    early = np.array([[1.0], [1.0], [4.0]], np.float32)
    np.testing.assert_allclose(
        scene_embedding(mean, early), [2.0, 4.0, np.sqrt(8 / 3), np.sqrt(26 / 3), 2.0, np.sqrt(2.0)], rtol=1e-6
    )
    np.testing.assert_allclose(scene_embedding(mean), [2.0, 4.0, np.sqrt(8 / 3), np.sqrt(26 / 3)], rtol=1e-6)


def test_active_dims_and_pca_components():
    assert active_dims(torch.tensor([0.0, 0.005, 0.02, 1.0])) == 2
    rng = np.random.default_rng(0)
    basis = rng.standard_normal((3, 10))
    x = torch.from_numpy(rng.standard_normal((5000, 3)) * [10.0, 3.0, 1.0] @ basis)  # rank 3
    pcs = pca_components(x)
    assert pcs["pca99"] <= 3 and pcs["pca90"] >= 1
    iso = pca_components(torch.from_numpy(rng.standard_normal((20000, 8))))
    assert iso["pca90"] == 8 or iso["pca90"] == 7  # isotropic: ~all dims needed


def test_checkpoint_round_trip(tmp_path):
    m = _loaded()
    path = save_checkpoint(
        str(tmp_path),
        m.vae,
        m.features,
        LossConfig(beta=0.2),
        step=17,
        epoch=3,
        optimizer=torch.optim.Adam(m.vae.parameters()),
        metrics={"val_loss": 1.5},
    )
    loaded = load_model(str(tmp_path))
    assert loaded.step == 17 and loaded.vae.cfg == m.vae.cfg and loaded.features == m.features
    x = torch.randn(1, 64, 40)
    torch.testing.assert_close(loaded.vae.encode(x)[0], m.vae.encode(x)[0])
    state, digest = read_checkpoint(path)
    assert state["loss_config"]["beta"] == 0.2 and len(digest) == 64
    assert os.path.exists(tmp_path / "meta.json")


def test_corrupted_checkpoint_gives_a_clear_error(tmp_path, checkpoint):
    data = open(checkpoint, "rb").read()
    bad = tmp_path / "model.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a loadable raydist checkpoint"):
        load_model(str(bad))
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_model(str(tmp_path / "nope"))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/raydist-pwned",))


def test_malicious_pickle_is_refused(tmp_path):
    buf = io.BytesIO()
    torch.save({"format": "raydist.vae", "payload": _Evil()}, buf)
    (tmp_path / "model.pt").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError):
        load_model(str(tmp_path))
    assert not os.path.exists("/tmp/raydist-pwned")
    (tmp_path / "model.pt").write_bytes(pickle.dumps({"format": "raydist.vae"}))
    with pytest.raises(CheckpointError):
        load_model(str(tmp_path))


def test_foreign_config_is_refused(tmp_path):
    m = _loaded()
    save_checkpoint(str(tmp_path), m.vae, m.features, LossConfig(), step=0, epoch=0)
    state, _ = read_checkpoint(str(tmp_path))
    state["model_config"]["surprise"] = 1
    buf = io.BytesIO()
    torch.save(state, buf)
    (tmp_path / "model.pt").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match="surprise"):
        load_model(str(tmp_path))


def test_energy_and_cepstra_of_a_cosine_spectrum():
    """A log-mel of 3 + 2 cos(pi k (m + 1/2) / n) over bands m: energy 3, and of the ortho DCT-II
    coefficients c1.. only c2 is non-zero, 2 sqrt(n / 2); frames pool d at a time."""
    from raydist.embedding.encode import _pool

    n, d = 64, 8
    m = torch.arange(n, dtype=torch.float64)
    spectrum = 3 + 2 * torch.cos(torch.pi * 2 * (m + 0.5) / n)
    logmel = spectrum[None, :, None].repeat(1, 1, 5 * d - 3).float()  # 37 frames: the last latent frame is padded
    energy, cepstra, bands = _pool(logmel, d, 5)
    assert energy.shape == (1, 5) and cepstra.shape == (1, 5, 12) and bands.shape == (1, 5, n)
    np.testing.assert_allclose(bands[0].numpy(), np.tile(spectrum.numpy(), (5, 1)), atol=1e-5)
    np.testing.assert_allclose(energy.numpy(), 3.0, atol=1e-5)
    expected = np.zeros(12)
    expected[1] = 2 * np.sqrt(n / 2)
    np.testing.assert_allclose(cepstra[0].numpy(), np.tile(expected, (5, 1)), atol=1e-4)

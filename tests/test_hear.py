"""HEAR 2021 API: sizes, dtypes, timestamps (constant spacing, none past the end), long audio."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raydist import hear


@pytest.fixture(scope="module")
def model(checkpoint):
    return hear.load_model(checkpoint)


def test_model_attributes(model):
    assert model.sample_rate == 16000
    # scene: mean and std of 32 latent dims and of 32 first-stage channels
    assert (model.scene_embedding_size, model.timestamp_embedding_size) == (128, 32)
    assert isinstance(model, torch.nn.Module)


@pytest.mark.parametrize("seconds", [0.1, 1.0, 1.79, 4.321])
def test_timestamp_embeddings(model, seconds):
    n = int(seconds * 16000)
    audio = torch.randn(3, n) * 0.1
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    assert emb.dtype == torch.float32 and ts.dtype == torch.float32
    assert emb.shape[:2] == ts.shape and emb.shape[0] == 3 and emb.shape[2] == 32
    duration_ms = n / 16
    assert float(ts.max()) <= duration_ms  # none past the end
    assert duration_ms - float(ts[0, -1]) <= 2 * 80  # last within two hops of the end
    if ts.shape[1] > 1:
        np.testing.assert_allclose(np.diff(ts[0].numpy()), 80.0, atol=1e-3)


def test_scene_embeddings(model):
    audio = torch.randn(4, 16000) * 0.1
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.dtype == torch.float32 and list(scene.shape) == [4, 128]
    single = hear.get_scene_embeddings(audio[1:2], model)
    torch.testing.assert_close(scene[1:2], single, atol=1e-5, rtol=0)


def test_twenty_minutes_without_drift(model):
    n = 20 * 60 * 16000
    audio = torch.zeros(1, n)
    audio[0, ::997] = 0.5  # sparse clicks, cheap to make
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    assert emb.shape[1] == ts.shape[1] == 15000
    spacing = np.diff(ts[0].numpy().astype(np.float64))
    assert np.abs(spacing - 80.0).max() < 1.0
    assert float(ts[0, -1]) <= 1_200_000 and 1_200_000 - float(ts[0, -1]) <= 160
    assert torch.isfinite(emb).all()


def test_bad_shape_is_refused(model):
    with pytest.raises(ValueError, match="n_sounds, n_samples"):
        hear.get_scene_embeddings(torch.zeros(16000), model)

"""The training objective beyond the ELBO: InfoNCE against its closed form, the augmented views,
the projection head, presets, and that the invariance term does pull two crops of one clip
together."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from raydist.config import FeatureConfig, LossConfig, ModelConfig, TrainConfig
from raydist.model.checkpoint import build_model, load_model, save_checkpoint
from raydist.model.losses import info_nce
from raydist.model.vae import AudioVAE, pool
from raydist.train.step import build_vae, make_optimizer, train_step, view_frames
from raydist.train.views import crop_starts, view_pairs


def test_info_nce_matches_closed_form():
    # orthonormal pairs: the right partner has cosine 1, the B-1 others 0:
    # loss = -log(e^(1/t) / (e^(1/t) + (B-1))) = log(1 + (B-1) e^(-1/t))
    b, t = 5, 0.5
    eye = torch.eye(b)
    assert info_nce(eye, eye * 3.0, t).item() == pytest.approx(math.log(1 + (b - 1) * math.exp(-1 / t)), rel=1e-6)
    # views that carry nothing (all equal) cannot pick their partner: log(B)
    same = torch.ones(b, 4)
    assert info_nce(same, same, t).item() == pytest.approx(math.log(b), rel=1e-6)
    # symmetric in its arguments
    a, c = torch.randn(b, 4), torch.randn(b, 4)
    assert info_nce(a, c, t).item() == pytest.approx(info_nce(c, a, t).item(), rel=1e-6)


def test_crops_hold_the_loudest_frame_and_stay_inside():
    g = torch.Generator().manual_seed(0)
    energy = torch.full((200, 50), -10.0)
    peaks = torch.randint(0, 50, (200,), generator=g)
    energy[torch.arange(200), peaks] = 0.0
    for frames in (1, 8, 24, 50):
        starts = crop_starts(energy, frames, g)
        assert (starts >= 0).all() and (starts + frames <= 50).all()
        assert ((starts <= peaks) & (peaks < starts + frames)).all()
    # every admissible start is drawn: a peak in the middle, crops of 8 -> 8 distinct starts
    mid = torch.full((400, 50), -10.0)
    mid[:, 25] = 0.0
    assert set(crop_starts(mid, 8, g).tolist()) == set(range(18, 26))


def test_view_pairs_shape_gain_and_mix():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 64, 200) - 5.0
    v = view_pairs(x, 96, generator=g)
    assert v.shape == (12, 64, 96)
    assert not torch.allclose(v[:6], v[6:])  # two different views of each window
    # no gain and no mix: each view is an exact crop of its own window
    plain = view_pairs(x, 96, max_gain_db=0.0, max_mix=0.0, generator=g)
    for i in range(6):
        found = [torch.allclose(plain[i], x[i, :, s : s + 96], atol=1e-5) for s in range(200 - 96 + 1)]
        assert any(found)
    # gain only: a view is its crop shifted by one constant within +-6 dB
    gained = view_pairs(x, 200, max_gain_db=6.0, max_mix=0.0, generator=g)
    shift = gained[:6] - x
    assert torch.allclose(shift, shift[:, :1, :1].expand_as(shift), atol=1e-5)
    assert shift.abs().max() <= 6.0 * math.log(10) / 10 + 1e-6


def test_pool_equals_scene_embedding():
    from raydist.embedding.features import scene_embedding

    mean = torch.randn(3, 8, 11)
    pooled = pool(mean)
    for i in range(3):
        np.testing.assert_allclose(pooled[i].numpy(), scene_embedding(mean[i].T.numpy()), rtol=1e-5, atol=1e-6)


def test_presets_and_overrides():
    base = ModelConfig.from_preset("base")
    assert (base.hidden, base.latent_dim, base.res_blocks, base.preset) == (256, 64, 2, "base")
    assert ModelConfig.from_preset("base", latent_dim=48).latent_dim == 48
    assert ModelConfig.from_preset("small") == ModelConfig()
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        ModelConfig.from_preset("huge")
    with pytest.raises(ValueError, match="contrast"):
        LossConfig(contrast=-1.0)


def test_checkpoint_keeps_the_preset_and_loads_one_without_a_head(tmp_path):
    model = AudioVAE(ModelConfig.from_preset("small", hidden=32, latent_dim=8))
    uri = save_checkpoint(str(tmp_path / "a"), model, FeatureConfig(), LossConfig(), 0, 0)
    m = load_model(uri)
    assert m.vae.cfg.preset == "small" and m.vae.cfg.hidden == 32 and m.vae.head is not None
    # a checkpoint written before the projection head existed: no proj_dim, no head weights
    state = torch.load(uri, weights_only=True)
    del state["model_config"]["proj_dim"], state["model_config"]["preset"]
    state["model"] = {k: v for k, v in state["model"].items() if not k.startswith("head.")}
    old = build_model(state)
    assert old.head is None and old.cfg.proj_dim == 0
    x = torch.randn(1, 64, 40) - 5
    torch.testing.assert_close(old.encode(x)[0], m.vae.encode(x)[0])


def test_train_step_reports_the_invariance_term_only_when_asked():
    torch.manual_seed(0)
    model = AudioVAE(ModelConfig(hidden=16, latent_dim=4, proj_dim=8))
    opt = make_optimizer(model, TrainConfig())
    x = torch.randn(4, 64, 200) - 5
    on = train_step(model, x, opt, 0, TrainConfig(), LossConfig(contrast=1.0), 100.0)
    off = train_step(model, x, opt, 1, TrainConfig(), LossConfig(contrast=0.0), 100.0)
    assert 0 < on["contrast"].item() and "contrast" not in off
    assert view_frames(model, LossConfig(view_s=1.0), 100.0) == 96  # whole latent frames of 8
    # the plain ELBO trains a model without the head (DDP needs every parameter in the loss)
    assert build_vae(ModelConfig(), LossConfig(contrast=0.0)).head is None
    assert build_vae(ModelConfig(), LossConfig(contrast=1.0)).head is not None
    no_head = AudioVAE(ModelConfig(hidden=16, latent_dim=4, proj_dim=0))
    with pytest.raises(ValueError, match="no projection head"):
        train_step(
            no_head, x, make_optimizer(no_head, TrainConfig()), 0, TrainConfig(), LossConfig(contrast=1.0), 100.0
        )


def _clips(n: int, frames: int, g: torch.Generator) -> torch.Tensor:
    """n log-mel 'clips': each a random spectral envelope (its source) with frame-to-frame jitter
    about as large as the differences between sources."""
    envelope = torch.randn(n, 64, 1, generator=g) - 5
    return envelope + 0.3 * torch.randn(n, 64, frames, generator=g)


def test_invariance_term_pulls_two_crops_of_one_clip_together():
    """After 60 steps, two augmented crops of one clip (never trained on) embed closer than crops
    of different clips, and find each other among 32 clips far more often than without the term."""

    def retrieval(contrast: float) -> tuple[float, float]:
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(0)
        model = AudioVAE(ModelConfig(hidden=32, latent_dim=8, proj_dim=16))
        opt = make_optimizer(model, TrainConfig(lr=3e-3))
        loss = LossConfig(contrast=contrast, view_s=0.48)
        for step in range(60):
            train_step(model, _clips(16, 96, g), opt, step, TrainConfig(), loss, 100.0)
        with torch.no_grad():
            a, b = torch.nn.functional.normalize(
                pool(model.encode(view_pairs(_clips(32, 96, g), 48, generator=g))[0]), dim=1
            ).chunk(2)
            sim = a @ b.T
            gap = sim.diag().mean() - (sim.sum() - sim.diag().sum()) / (32 * 31)
            top1 = (sim.argmax(1) == torch.arange(32)).float().mean()
        return gap.item(), top1.item()

    (gap, top1), (_, top1_without) = retrieval(1.0), retrieval(0.0)
    assert gap > 0.3  # same-clip cosine exceeds different-clip cosine
    assert top1 > top1_without + 0.15  # measured 0.47 against 0.22

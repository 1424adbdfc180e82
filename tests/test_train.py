"""Ray Train: 2 DDP workers train, checkpoint, and resume from the latest checkpoint."""

from __future__ import annotations

import json
import os

import pytest

from raydist.config import ModelConfig, TrainConfig
from raydist.corpus import write_corpus
from raydist.model.checkpoint import read_checkpoint
from raydist.train.trainer import TrainError, train

pytestmark = pytest.mark.slow

SMALL = ModelConfig(hidden=48)


def test_train_checkpoint_and_resume(ray_session, tmp_path):
    manifest = write_corpus(str(tmp_path / "corpus"), n_clips=60, seed=1)
    out = str(tmp_path / "run")
    cfg = TrainConfig(workers=2, epochs=4, batch_size=16, checkpoint_every=1000, lr=2e-3)
    first = train([manifest], out, cfg, SMALL)

    # a checkpoint was written and exported with the configs; the demo corpus trains
    state, _ = read_checkpoint(first.model_uri)
    steps_per_epoch = state["step"] // 4
    assert state["epoch"] == 4 and steps_per_epoch > 0
    assert len(first.history) == 5  # step 0 plus one entry per epoch
    v0, v_end = first.history[0]["val_loss"], first.history[-1]["val_loss"]
    assert v_end < 0.75 * v0, (v0, v_end)
    assert 0 < first.metrics["active_dims"] <= 32
    assert 1 <= first.metrics["pca90"] <= first.metrics["pca99"] <= 32
    saved = json.load(open(os.path.join(out, "metrics.json")))
    assert saved["config"]["train"]["epochs"] == 4

    # the same --out without --resume is refused; --resume continues step count and history
    with pytest.raises(TrainError, match="--resume"):
        train([manifest], out, cfg, SMALL)
    resumed = train([manifest], out, TrainConfig(**{**cfg.to_dict(), "epochs": 6}), SMALL, resume=True)
    state2, _ = read_checkpoint(resumed.model_uri)
    assert state2["epoch"] == 6
    assert state2["step"] == state["step"] + 2 * steps_per_epoch, (state["step"], state2["step"])
    assert len(resumed.history) == 7
    assert resumed.history[4]["val_loss"] == pytest.approx(first.history[-1]["val_loss"])


def test_resume_without_a_run_is_refused(ray_session, tmp_path):
    with pytest.raises(TrainError, match="no training run"):
        train([str(tmp_path)], str(tmp_path / "empty"), resume=True)

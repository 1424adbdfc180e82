"""Ray Train: 2 DDP workers train, checkpoint, and resume from the latest checkpoint."""

from __future__ import annotations

import json
import os

import pytest
import torch

from raydist.config import ModelConfig, TrainConfig
from raydist.demo.corpus import write_corpus
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
    # checkpoints every checkpoint_every steps and after the last epoch, not after each epoch
    run_dir = os.path.join(out, "run")
    assert (
        len([d for d in os.listdir(run_dir) if d.startswith("checkpoint_2") and os.path.isdir(f"{run_dir}/{d}")]) == 1
    )
    parts = [e for e in first.history[1:] if e.get("time_step_s", 0) > 0]  # where each epoch's time went
    assert len(parts) == 4 and all(e["time_validate_s"] > 0 and "time_data_s" in e for e in parts)

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


def test_in_process_trainer_shares_the_step_and_learns(tmp_path):
    """raydist.train.local runs the Ray loop's step in one process: the ELBO falls, the checkpoint
    records the steps taken and the optimiser the step function used."""
    import torch

    from raydist.config import FeatureConfig, LossConfig
    from raydist.model.checkpoint import load_model
    from raydist.model.losses import elbo_terms
    from raydist.model.vae import AudioVAE
    from raydist.train.local import load_windows, train_local

    manifest = write_corpus(str(tmp_path / "corpus"), n_clips=20, seed=2)
    cfg = TrainConfig(workers=2, batch_size=8, epochs=12, lr=2e-3)
    x = load_windows([manifest], cfg, FeatureConfig())

    def elbo(vae) -> float:
        with torch.no_grad():
            out = vae(x)
            t = elbo_terms(out["recon"], vae.normalize(x), out["mean"], out["logvar"])
        return float(t["recon"] + LossConfig().beta * t["kl"])

    torch.manual_seed(cfg.seed)
    before = elbo(AudioVAE(SMALL).eval())
    uri = train_local([manifest], str(tmp_path / "m"), cfg, SMALL)
    state, _ = read_checkpoint(uri)
    steps = 12 * -(-len(x) // 16)  # epochs x ceil(windows / global batch of workers x batch_size)
    assert state["step"] == steps and state["epoch"] == 12
    assert state["optimizer"]["param_groups"][0]["lr"] == cfg.lr
    assert elbo(load_model(uri).vae) < 0.8 * before


def test_ddp_trains_with_the_invariance_term(ray_session, tmp_path):
    """The term's projection head takes part in every DDP step (an unused parameter would stop
    DDP on the second step), and the checkpoint records the objective and keeps the head."""
    from raydist.config import FeatureConfig, LossConfig

    manifest = write_corpus(str(tmp_path / "corpus"), n_clips=40, seed=2)
    cfg = TrainConfig(workers=2, epochs=2, batch_size=8, checkpoint_every=1000)
    result = train([manifest], str(tmp_path / "run"), cfg, SMALL, FeatureConfig(), LossConfig(contrast=1.0))
    state, _ = read_checkpoint(result.model_uri)
    assert state["step"] >= 4 and state["loss_config"]["contrast"] == 1.0
    assert any(k.startswith("head.") for k in state["model"])


class _Shard:
    """A Ray Data shard's iter_torch_batches over fixed rows; counts the passes asked of it."""

    def __init__(self, rows: torch.Tensor):
        self.rows, self.passes = rows, 0

    def iter_torch_batches(self, batch_size, local_shuffle_buffer_size=None, device=None):
        self.passes += 1
        for i in range(0, len(self.rows), batch_size):
            yield {"logmel": self.rows[i : i + batch_size]}


def test_shard_batches_keep_the_windows_that_fit_and_permute_them_each_epoch():
    from raydist.train.loop import ShardBatches

    rows = torch.arange(50, dtype=torch.float32)[:, None].repeat(1, 3)  # 50 windows, 600 bytes
    shard = _Shard(rows)
    kept = ShardBatches(shard, 8, "cpu", keep_bytes=600, shuffle_buffer=16, seed=1)
    epochs = [[b["logmel"] for b in kept.epoch(e)] for e in range(3)]
    assert shard.passes == 1  # later epochs come from memory
    for batches in epochs:
        assert [len(b) for b in batches] == [8] * 6 + [2]  # the same batches per epoch as streaming
        assert sorted(torch.cat(batches)[:, 0].tolist()) == list(range(50))  # every window once
    assert not torch.equal(torch.cat(epochs[1]), torch.cat(epochs[2]))  # a fresh order each epoch
    assert [len(b["logmel"]) for b in ShardBatches(shard, 8, "cpu", keep_bytes=600)] == [8] * 6 + [2]

    streamed = _Shard(rows)
    too_big = ShardBatches(streamed, 8, "cpu", keep_bytes=599, shuffle_buffer=16)
    for e in range(3):
        assert sorted(torch.cat([b["logmel"] for b in too_big.epoch(e)])[:, 0].tolist()) == list(range(50))
    assert streamed.passes == 3 and too_big.kept is None  # a shard over the limit streams every epoch


def test_workers_default_to_one_per_node_with_all_its_cpus_or_one_per_gpu(monkeypatch):
    from raydist.train import trainer
    from raydist.train.trainer import scaling

    nodes = [
        {"Alive": True, "Resources": {"CPU": 4.0}},
        {"Alive": True, "Resources": {"CPU": 2.0, "memory": 1e9}},
        {"Alive": True, "Resources": {"memory": 1e9}},  # a head with no CPUs
        {"Alive": False, "Resources": {"CPU": 8.0}},  # a lost node
    ]
    monkeypatch.setattr(trainer.ray, "nodes", lambda: nodes)
    monkeypatch.setattr(trainer.ray, "cluster_resources", lambda: {"CPU": 6.0, "GPU": 4.0})

    def pick(use_gpu: bool = False, **kw) -> tuple[int, float]:
        c = scaling(TrainConfig(**kw), use_gpu)
        return c.workers, c.cpus_per_worker

    assert pick() == (2, 2.0)  # one per live node with CPUs, each the smallest node's CPUs
    assert pick(cpus_per_worker=1) == (2, 1.0)
    assert pick(workers=3) == (3, 1.0)  # an explicit count keeps 1 CPU each, as before
    assert pick(workers=3, cpus_per_worker=0.5) == (3, 0.5)
    assert pick(True) == (4, 1.0)  # one per GPU
    assert pick(True, gpus_per_worker=0.5) == (8, 1.0)
    assert pick(True, workers=2, cpus_per_worker=4) == (2, 4.0)
    nodes[:2] = []
    with pytest.raises(TrainError, match="no node of the cluster has a whole CPU"):
        pick()


def test_placement_group_cleaner_is_left_out_only_on_a_local_ray_this_process_started_and_no_datasets_callback(
    ray_session, monkeypatch, tmp_path
):
    import ray.data
    from ray.train import ScalingConfig
    from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
    from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback

    from raydist.cluster import session
    from raydist.train.trainer import _Trainer

    def kinds(local: bool, datasets: dict | None = None) -> set[type]:
        t = _Trainer(lambda cfg: None, scaling_config=ScalingConfig(num_workers=1), local=local, datasets=datasets)
        return {type(c) for c in t._create_default_callbacks()}

    assert PlacementGroupCleanerCallback in kinds(False)
    assert kinds(True) == kinds(False) - {PlacementGroupCleanerCallback}
    # no dataset handed to Ray Train (the windows travel in the loop's config): no dataset manager
    assert DatasetsCallback not in kinds(False) and DatasetsCallback in kinds(False, {"x": ray.data.range(1)})
    # the tests' shared Ray is one that this process started (init_ray records it) ...
    assert session.started_local()
    # ... and a Ray that it joined is not
    monkeypatch.setattr(session, "RECORDS", str(tmp_path))
    assert not session.started_local()

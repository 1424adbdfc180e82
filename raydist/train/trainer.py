"""Driver side of training: inputs -> Ray Data windows -> TorchTrainer -> out/model.pt.

Two stages: the VAE (`train`), and the learned waveform decoder of a trained VAE
(`train(..., vocoder_of=M)`: the VAE in checkpoint M is frozen and copied into out/model.pt
beside the vocoder, so one checkpoint serves embed, compress, decompress and generate).

The run lives at `out`/run (Ray Train's storage: local directory or s3://). Resuming re-creates
the trainer on the same storage path and run name; the loop loads the latest checkpoint, so a
resume works after a lost worker and after the driver itself died.
"""

from __future__ import annotations

import json
import os
import posixpath
import signal
import time
from dataclasses import dataclass, field, replace
from typing import Any

import fsspec
import pyarrow.fs as pafs
import ray
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.train.v2._internal.callbacks.datasets import DatasetsCallback  # ray 2.60
from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback  # ray 2.60

from raydist.cluster.session import cluster_has_gpus, started_local
from raydist.config import FeatureConfig, LossConfig, ModelConfig, TrainConfig, VocoderConfig
from raydist.errors import RaydistError
from raydist.io.inputs import resolve_inputs
from raydist.io.store import StoreError, check_writable
from raydist.model.checkpoint import CheckpointError, read_checkpoint, vocoder_config_for
from raydist.signals import Interrupted, name
from raydist.train.data import split_inputs, windows_dataset
from raydist.train.loop import train_loop_per_worker, vocoder_loop_per_worker

RUN_NAME = "run"


class TrainError(RaydistError, RuntimeError):
    pass


@dataclass
class TrainResult:
    model_uri: str  # out/model.pt: the latest checkpoint's weights and configs
    metrics: dict[str, Any]  # the last report
    history: list[dict[str, Any]]  # one entry per epoch (entry 0: before training)
    seconds: float
    resumed_at: list[int] = field(default_factory=list)  # steps at which training restarted from a checkpoint

    def summary(self) -> str:
        m, first = self.metrics, (self.history[0] if self.history else {})
        if "val_mel" in m:
            return (
                f"trained the vocoder to step {m.get('step')} epoch {m.get('epoch')}: validation log-mel L1 "
                f"{m['val_mel']:.3f}, STFT loss {m['val_stft']:.3f}, {self.seconds:.0f} s; model at {self.model_uri}"
                + (f"; resumed from checkpoints at steps {self.resumed_at}" if self.resumed_at else "")
            )
        return (
            f"trained to step {m.get('step')} epoch {m.get('epoch')}: val_loss {first.get('val_loss', float('nan')):.3f}"
            f" -> {m.get('val_loss', float('nan')):.3f}, active dims {m.get('active_dims')}, "
            f"pca90 {m.get('pca90')}, {self.seconds:.0f} s; model at {self.model_uri}"
            + (f"; resumed from checkpoints at steps {self.resumed_at}" if self.resumed_at else "")
        )


def _storage(out: str, storage_options: dict[str, Any]) -> tuple[str, pafs.FileSystem | None]:
    """Ray Train storage_path, and for S3 the same s3fs (endpoint, retry policy) as everything else."""
    if out.startswith("s3://") and storage_options:
        fs = fsspec.filesystem("s3", **storage_options)
        return out[len("s3://") :], pafs.PyFileSystem(pafs.FSSpecHandler(fs))
    if "://" in out:
        return out, None
    import os

    return os.path.abspath(out), None


def _run_exists(out: str, storage_options: dict[str, Any]) -> bool:
    fs, path = fsspec.core.url_to_fs(out, **storage_options)
    return fs.exists(path.rstrip("/") + "/" + RUN_NAME)


def train(
    inputs: list[str],
    out: str,
    train_cfg: TrainConfig = TrainConfig(),
    model_cfg: ModelConfig = ModelConfig(),
    features: FeatureConfig = FeatureConfig(),
    loss_cfg: LossConfig = LossConfig(),
    resume: bool = False,
    storage_options: dict[str, Any] | None = None,
    vocoder_of: str | None = None,
    vocoder_cfg: VocoderConfig | None = None,
    vocoder_overrides: dict[str, Any] | None = None,
) -> TrainResult:
    """Train the VAE on `inputs` with Ray Train; write out/model.pt. Ray must be initialised.

    With `vocoder_of` (a VAE checkpoint), train a waveform decoder for that VAE instead: model_cfg,
    features and loss_cfg come from the checkpoint, `vocoder_cfg` defaults to the VAE preset's
    shape (or the checkpoint's own vocoder's, which is then trained on) with `vocoder_overrides`
    applied, and out/model.pt holds both networks."""
    so = storage_options or {}
    vae_state = None
    if vocoder_of is not None:
        try:
            vae_state, _ = read_checkpoint(vocoder_of, so)
        except CheckpointError as e:
            raise TrainError(str(e)) from e
        vae_state = {k: v for k, v in vae_state.items() if k != "optimizer"}  # a vocoder in it is trained on
        model_cfg = ModelConfig.from_dict({"proj_dim": 0, **vae_state["model_config"]})
        features = FeatureConfig.from_dict(vae_state["feature_config"])
        loss_cfg = LossConfig.from_dict(vae_state["loss_config"])
        vocoder_cfg = replace(vocoder_config_for(vae_state, vocoder_cfg), **(vocoder_overrides or {}))
    if model_cfg.n_mels != features.n_mels:
        raise ValueError(f"model n_mels {model_cfg.n_mels} != feature n_mels {features.n_mels}")
    fs, path = fsspec.core.url_to_fs(out, **so)
    try:  # a missing bucket or a read-only disk fails before any work
        check_writable(out, fs, path.rstrip("/"))
    except StoreError as e:
        raise TrainError(str(e)) from e
    exists = _run_exists(out, so)
    if exists and not resume:
        raise TrainError(f"{out} already holds a training run: pass --resume to continue it, or pick a new --out")
    if resume and not exists:
        raise TrainError(f"--resume given but {out} holds no training run to resume")
    start = time.time()
    table = resolve_inputs(inputs, so).table
    train_table, val_table = split_inputs(table, train_cfg.val_fraction)
    if train_table.num_rows == 0 or val_table.num_rows == 0:
        raise TrainError(
            f"need clips for both training and validation; got {train_table.num_rows} and {val_table.num_rows}"
        )
    print(f"raydist: {train_table.num_rows} training and {val_table.num_rows} validation clips")
    use_gpu = train_cfg.use_gpu == "yes" or (train_cfg.use_gpu == "auto" and cluster_has_gpus())
    train_cfg = scaling(train_cfg, use_gpu)
    print(
        f"raydist: {train_cfg.workers} Ray Train worker{'s' * (train_cfg.workers > 1)} x "
        f"{train_cfg.cpus_per_worker:g} CPU{'s' * (train_cfg.cpus_per_worker != 1)}"
        + (f" and {train_cfg.gpus_per_worker:g} GPU" if use_gpu else "")
        + f", global batch {train_cfg.global_batch} windows"
    )
    column = "logmel" if vae_state is None else "wave"
    # Cut before the workers start (they may take every CPU, leaving none for Ray Data tasks) and
    # split here into one equal part per worker (DDP steps stay in lockstep), which each worker finds
    # in its config. Handed to Ray Train as `datasets=`, the cut windows would be split again as
    # streams, through a dataset manager and a split coordinator per dataset, three more actor
    # processes: a 1-epoch command took 3.7 s longer on 2 cores (3 alternating runs each way).
    shards = {
        name: windows_dataset(t, features, train_cfg.window_s, train_cfg.window_hop_s, so, column)
        .materialize()
        .split(train_cfg.workers, equal=True)
        for name, t in (("train", train_table), ("val", val_table))
    }
    storage_path, storage_fs = _storage(out, so)
    loop_cfg = {
        "train": train_cfg.to_dict(),
        "model": model_cfg.to_dict(),
        "features": features.to_dict(),
        "loss": loss_cfg.to_dict(),
    }
    if vae_state is not None:
        loop_cfg.update(vocoder=(vocoder_cfg or VocoderConfig()).to_dict(), vae_state=vae_state)
    trainer = _Trainer(
        train_loop_per_worker if vae_state is None else vocoder_loop_per_worker,
        train_loop_config={**loop_cfg, "shards": shards},
        scaling_config=ScalingConfig(
            num_workers=train_cfg.workers,  # resolved by scaling()
            use_gpu=use_gpu,
            resources_per_worker={
                "CPU": train_cfg.cpus_per_worker,
                **({"GPU": train_cfg.gpus_per_worker} if use_gpu else {}),
            },
            placement_strategy=train_cfg.placement,
        ),
        run_config=RunConfig(
            name=RUN_NAME,
            storage_path=storage_path,
            storage_filesystem=storage_fs,
            failure_config=FailureConfig(max_failures=train_cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
        local=started_local(),
    )
    try:
        result = trainer.fit()
    except Exception:
        if not trainer.received:
            raise
    if trainer.received:
        raise Interrupted(trainer.received[0], _interrupted(out, so, trainer.received[0]))
    if result.error is not None:
        raise TrainError(f"training failed: {result.error}") from result.error
    if result.checkpoint is None:
        raise TrainError("training finished without a checkpoint")
    return _export(result, out, so, loop_cfg, time.time() - start)


def scaling(tc: TrainConfig, use_gpu: bool) -> TrainConfig:
    """`tc` with workers and CPUs per worker resolved from the cluster (Ray initialised) where they
    are 0: one worker per GPU (1 CPU each) when GPUs are used; on CPUs, one worker per node that
    has CPUs, each reserving all of the smallest such node's CPUs and running them as torch
    threads (no DDP and one process start on a laptop; DDP across nodes). The windows are cut
    before the workers start, so no Ray Data task waits for a CPU they hold. (Streaming the first
    epoch beside a worker that reserves one CPU less was slower on 2 cores: the cutting tasks and
    the workers' start compete for the same cores, and the later epochs' steps took 7% longer.)"""
    if tc.workers and tc.cpus_per_worker:
        return tc
    if use_gpu:
        gpus = ray.cluster_resources().get("GPU", 0)
        return replace(
            tc,
            workers=tc.workers or max(1, int(gpus // (tc.gpus_per_worker or 1))),
            cpus_per_worker=tc.cpus_per_worker or 1.0,
        )
    cpus = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) >= 1]
    if not cpus:
        raise TrainError(
            "no node of the cluster has a whole CPU to train on yet: pass --workers N (and --cpus-per-worker) "
            "so that the autoscaler adds nodes for them"
        )
    if tc.workers:
        return replace(tc, cpus_per_worker=1.0)
    return replace(tc, workers=len(cpus), cpus_per_worker=tc.cpus_per_worker or float(min(cpus)))


class _Trainer(TorchTrainer):
    """TorchTrainer whose fit() answers SIGTERM as it answers SIGINT: it aborts the run through
    its controller (workers stop, checkpoints stay), then `train` says which checkpoint
    `--resume` continues from. Ray Train installs its SIGINT handler inside fit() through this
    hook (ray 2.60); a second signal exits at once.

    On a local Ray that this process started (and that ends with it), Ray Train's placement-group
    cleaner is left out: a detached actor that frees the resources of a controller that died, for
    a cluster that outlives the driver. Here it was one more process polling the State API, which
    a local Ray without a dashboard does not serve; a 1-epoch command took 2.1 s longer with it.
    Ray Train's datasets callback is left out everywhere, as no dataset is handed to it (each
    worker finds its windows in its config): it started a dataset manager actor, one more process
    importing Ray Data during the first epoch."""

    received: list[int] | tuple = ()  # the signals fit() received (set when it runs in the main thread)

    def __init__(self, *args, local: bool = False, **kwargs) -> None:
        self.local = local
        super().__init__(*args, **kwargs)

    def _create_default_callbacks(self) -> list:
        callbacks = super()._create_default_callbacks()
        if not self.datasets:  # the windows come in the loop's config: no dataset manager actor to start
            callbacks = [c for c in callbacks if not isinstance(c, DatasetsCallback)]
        if not self.local:
            return callbacks
        return [c for c in callbacks if not isinstance(c, PlacementGroupCleanerCallback)]

    def _register_sigint_handler(self, controller) -> None:
        self.received = []

        def handler(signum, frame):
            if self.received:
                os._exit(128 + signum)
            self.received.append(signum)
            print(f"\nraydist: {name(signum)}: stopping training (send it again to stop at once)", flush=True)
            controller.abort.remote()

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, handler)


def _interrupted(out: str, so: dict[str, Any], signum: int) -> str:
    """What an interrupted training run kept: the checkpoint `--resume` continues from."""
    fs, path = fsspec.core.url_to_fs(out, **so)
    found = sorted(fs.glob(f"{path.rstrip('/')}/{RUN_NAME}/checkpoint_*/meta.json"))
    if not found:
        return f"training interrupted by {name(signum)} before its first checkpoint; nothing to resume"
    with fs.open(found[-1], "r") as f:
        meta = json.load(f)
    return (
        f"training interrupted by {name(signum)}; `--resume` continues from the checkpoint at step "
        f"{meta['step']} (epoch {meta['epoch']}, {posixpath.dirname(found[-1])})"
    )


def _export(result, out: str, so: dict[str, Any], loop_cfg: dict[str, Any], seconds: float) -> TrainResult:
    """Copy the latest checkpoint's model.pt to out/model.pt, and write metrics beside it."""
    import torch

    with result.checkpoint.as_directory() as d:
        with open(f"{d}/model.pt", "rb") as f:
            data = f.read()
        saved = torch.load(f"{d}/history.pt", weights_only=True)
    history, resumed_at = saved["history"], saved.get("resumed_at", [])
    loop_cfg = {k: v for k, v in loop_cfg.items() if k != "vae_state"}  # weights are not metrics
    base = out.rstrip("/")
    with fsspec.open(f"{base}/model.pt", "wb", **so) as f:
        f.write(data)
    with fsspec.open(f"{base}/metrics.json", "w", **so) as f:
        json.dump(
            {"config": loop_cfg, "final": result.metrics, "history": history, "resumed_at": resumed_at}, f, indent=2
        )
    return TrainResult(f"{base}/model.pt", dict(result.metrics), history, seconds, resumed_at)


__all__ = ["TrainConfig", "TrainError", "TrainResult", "train", "ray"]

"""Training in one process, no Ray: the same windows, step, optimiser and settings as `raydist
train`, for small corpora, tests and benchmarks that must not pay for a cluster.

    from raydist.train.local import train_local
    model_uri = train_local(["corpus/manifest.csv"], "runs/quick", TrainConfig(epochs=5))

One process plays every Ray Train worker: its batch is workers x batch_size windows (the global
batch of a DDP run), shuffled anew each epoch; validation clips (by id hash) are held out as in
`raydist train`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from raydist.config import FeatureConfig, LossConfig, ModelConfig, TrainConfig
from raydist.io.inputs import resolve_inputs
from raydist.model.checkpoint import save_checkpoint
from raydist.train.data import make_windows, split_inputs
from raydist.train.step import build_vae, make_optimizer, train_step


def load_windows(
    inputs: list[str], cfg: TrainConfig, features: FeatureConfig, storage_options: dict[str, Any] | None = None
) -> torch.Tensor:
    """The training split's log-mel windows, (N, n_mels, frames), as the Ray trainer cuts them."""
    table, _ = split_inputs(resolve_inputs(inputs, storage_options).table, cfg.val_fraction)
    uris = np.array(table.column("uri").to_pylist(), dtype=object)
    batch = make_windows({"uri": uris}, features.to_dict(), cfg.window_s, cfg.window_hop_s, storage_options)
    return torch.from_numpy(batch["logmel"])


def train_local(
    inputs: list[str],
    out: str,
    cfg: TrainConfig = TrainConfig(),
    model_cfg: ModelConfig = ModelConfig(),
    features: FeatureConfig = FeatureConfig(),
    loss_cfg: LossConfig = LossConfig(),
    steps: int | None = None,
    storage_options: dict[str, Any] | None = None,
    device: str = "cpu",
) -> str:
    """Train on `inputs` for cfg.epochs epochs (or exactly `steps` steps) and save the checkpoint
    under `out`; return model.pt's URI. On a CUDA `device` the forward pass runs in bf16 autocast,
    as Ray Train's workers do on GPUs."""
    x = load_windows(inputs, cfg, features, storage_options)
    if len(x) == 0:
        raise ValueError(f"no training windows in {inputs}")
    torch.manual_seed(cfg.seed)
    model = build_vae(model_cfg, loss_cfg).to(device)
    x = x.to(device)
    opt = make_optimizer(model, cfg)
    batch = cfg.workers * cfg.batch_size
    total = steps if steps is not None else cfg.epochs * math.ceil(len(x) / batch)
    step, epoch = 0, 0
    while step < total:
        order = torch.randperm(len(x), device=device)  # a new shuffle each epoch
        for i in range(0, len(x), batch):
            if step == total:
                break
            train_step(
                model, x[order[i : i + batch]], opt, step, cfg, loss_cfg, features.frame_rate, bf16=device != "cpu"
            )
            step += 1
        else:
            epoch += 1  # a full pass
    return save_checkpoint(out, model.eval(), features, loss_cfg, step=step, epoch=epoch, optimizer=opt)

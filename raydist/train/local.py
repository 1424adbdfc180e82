"""Training in one process, no Ray: the same windows, step, optimiser and settings as `raydist
train`, for small corpora, tests and benchmarks that must not pay for a cluster.

    from raydist.train.local import train_local
    model_uri = train_local(["corpus/manifest.csv"], "runs/quick", TrainConfig(epochs=5))

One process plays every Ray Train worker: its batch is `TrainConfig.global_batch` windows (workers
x batch_size, the global batch of a DDP run; one worker for the default workers=0), shuffled anew
each epoch; validation clips (by id hash) are held out as in `raydist train`.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np
import torch

from raydist.config import FeatureConfig, LossConfig, ModelConfig, TrainConfig, VocoderConfig
from raydist.io.inputs import resolve_inputs
from raydist.model.checkpoint import model_from_state, read_checkpoint, save_checkpoint, vocoder_config_for
from raydist.model.vocoder import Discriminator, Vocoder
from raydist.train.data import make_windows, split_inputs
from raydist.train.step import build_vae, make_optimizer, train_step, vocoder_step


def load_windows(
    inputs: list[str],
    cfg: TrainConfig,
    features: FeatureConfig,
    storage_options: dict[str, Any] | None = None,
    column: str = "logmel",
) -> torch.Tensor:
    """The training split's windows as the Ray trainer cuts them: log-mel (N, n_mels, frames), or
    waveforms (N, samples) with column="wave"."""
    table, _ = split_inputs(resolve_inputs(inputs, storage_options).table, cfg.val_fraction)
    uris = np.array(table.column("uri").to_pylist(), dtype=object)
    batch = make_windows({"uri": uris}, features.to_dict(), cfg.window_s, cfg.window_hop_s, storage_options, column)
    return torch.from_numpy(batch[column])


def batches(x: torch.Tensor, cfg: TrainConfig, steps: int | None = None) -> Iterator[tuple[int, int, torch.Tensor]]:
    """(step, full passes once this batch is taken, batch) for cfg.epochs passes over x (or
    exactly `steps` steps): batches of cfg.global_batch windows (a DDP run's global batch),
    shuffled anew each pass."""
    batch = cfg.global_batch
    total = steps if steps is not None else cfg.epochs * math.ceil(len(x) / batch)
    step, epoch = 0, 0
    while step < total:
        order = torch.randperm(len(x), device=x.device)
        for i in range(0, len(x), batch):
            if step == total:
                return
            yield step, epoch + int(i + batch >= len(x)), x[order[i : i + batch]]
            step += 1
        epoch += 1


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
    taken, epoch = 0, 0
    for step, passes, b in batches(x, cfg, steps):
        train_step(model, b, opt, step, cfg, loss_cfg, features.frame_rate, bf16=device != "cpu")
        taken, epoch = step + 1, passes
    return save_checkpoint(out, model.eval(), features, loss_cfg, step=taken, epoch=epoch, optimizer=opt)


def train_vocoder_local(
    inputs: list[str],
    model: str,
    out: str,
    cfg: TrainConfig = TrainConfig(),
    vcfg: VocoderConfig | None = None,
    steps: int | None = None,
    storage_options: dict[str, Any] | None = None,
    device: str = "cpu",
) -> str:
    """Train a waveform decoder for the VAE in checkpoint `model` (frozen) on `inputs`, as
    `raydist train --stage vocoder` does (vcfg: the VAE preset's shape unless given); save VAE +
    vocoder under `out`; return model.pt's URI."""
    state, digest = read_checkpoint(model, storage_options)
    m = model_from_state(state, digest, model, device)
    vcfg = vocoder_config_for(state, vcfg)
    x = load_windows(inputs, cfg, m.features, storage_options, column="wave")
    if len(x) == 0:
        raise ValueError(f"no training windows in {inputs}")
    torch.manual_seed(cfg.seed)
    vocoder = Vocoder(vcfg, m.features, m.vae.cfg).to(device)
    if m.vocoder is not None and m.vocoder.cfg.same_shape(vcfg):  # a checkpoint with a vocoder: go on training it
        vocoder.load_state_dict(m.vocoder.state_dict())
    disc = Discriminator().to(device) if vcfg.adversarial > 0 else None
    if disc is not None and "discriminator" in state:
        disc.load_state_dict(state["discriminator"]["model"])
    disc_opt = make_optimizer(disc, cfg) if disc is not None else None
    x = x.to(device)
    opt = make_optimizer(vocoder, cfg)
    taken, epoch = 0, 0
    for step, passes, b in batches(x, cfg, steps):
        vocoder_step(vocoder, m.vae, m.logmel, b, opt, cfg, vcfg, bf16=device != "cpu", disc=disc, disc_opt=disc_opt)
        taken, epoch = step + 1, passes
    return save_checkpoint(
        out,
        m.vae,
        m.features,
        LossConfig.from_dict(state["loss_config"]),
        step=taken,
        epoch=epoch,
        optimizer=opt,
        vocoder=vocoder.eval(),
        stage="vocoder",
        discriminator=None if disc is None else {"model": disc.state_dict(), "optimizer": disc_opt.state_dict()},
    )

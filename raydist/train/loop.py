"""The Ray Train loops run on every worker, checkpoints from rank 0, resume from the latest one.

- `train_loop_per_worker`: DDP over the VAE, the shared training step (`step.train_step`: ELBO
  with KL warm-up and free bits, clipping), validation with latent-health figures.
- `vocoder_loop_per_worker`: DDP over the waveform decoder of a frozen VAE (`step.vocoder_step`:
  log-mel L1 + multi-resolution STFT on the codec's quantised latents), validation of both terms."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Any, Iterator

import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist

from raydist.audio.features import LogMel
from raydist.config import FeatureConfig, LossConfig, ModelConfig, TrainConfig, VocoderConfig
from raydist.model.checkpoint import build_model, read_checkpoint, save_checkpoint
from raydist.model.losses import elbo_terms, kl_per_dim
from raydist.model.metrics import active_dims, pca_components
from raydist.model.vae import AudioVAE
from raydist.model.vocoder import Discriminator, Vocoder, vocoder_terms
from raydist.train.step import build_vae, codec_logmel, make_optimizer, train_step, vocoder_step

PCA_MAX_FRAMES = 20000  # latent frames kept (on rank 0) for the PCA figure


def say(line: str) -> None:
    """One line on the driver's console. Ray Train patches print() in its workers to log through
    its own logger and also print, so a plain print shows each line twice."""
    print(line, file=sys.__stdout__, flush=True)


def _restore(model: torch.nn.Module, key: str = "model") -> dict[str, Any] | None:
    """Load the latest Ray Train checkpoint's `key` weights ("model": the VAE, "vocoder") into model."""
    ckpt = ray.train.get_checkpoint()
    if ckpt is None:
        return None
    with ckpt.as_directory() as d:
        state, _ = read_checkpoint(d)
    model.load_state_dict(state[key])
    return state


class ShardBatches:
    """A worker's batches of one Ray Data shard, epoch after epoch. The first epoch streams the
    shard (with Ray Data's local shuffle buffer); if every rank's shard fits in `keep_bytes` the
    windows stay in memory and later epochs draw batches from a fresh permutation (seeded by seed,
    rank and epoch), so a short epoch does not pay Ray Data's start of a pass (about a second on a
    small shard, as much as ten training steps on 2 cores). A shard too large to keep streams on
    every epoch, as before."""

    def __init__(self, shard, batch_size: int, device, keep_bytes: int, shuffle_buffer: int | None = None, seed=0):
        self.shard, self.batch_size, self.device = shard, batch_size, device
        self.keep_bytes, self.shuffle_buffer, self.seed = keep_bytes, shuffle_buffer, seed
        self.kept: dict[str, torch.Tensor] | None = None

    def epoch(self, epoch: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        if self.kept is not None:
            n = len(next(iter(self.kept.values())))
            order = torch.arange(n)
            if self.shuffle_buffer:
                g = torch.Generator().manual_seed(self.seed * 1_000_003 + _rank() * 1009 + epoch)
                order = torch.randperm(n, generator=g)
            for i in range(0, n, self.batch_size):
                idx = order[i : i + self.batch_size].to(self.device)
                yield {k: v[idx] for k, v in self.kept.items()}
            return
        kept: list[dict[str, torch.Tensor]] | None = [] if self.keep_bytes > 0 else None
        size = 0
        for batch in self.shard.iter_torch_batches(
            batch_size=self.batch_size, local_shuffle_buffer_size=self.shuffle_buffer or None, device=self.device
        ):
            if kept is not None:
                size += sum(t.numel() * t.element_size() for t in batch.values())
                if size <= self.keep_bytes:
                    kept.append(batch)
                else:
                    kept = None  # too large: stream every epoch (and free what was kept)
            yield batch
        # every rank keeps its windows or none does, so that all ranks draw their epochs the same
        # way and stay in step
        fits = torch.tensor([0.0 if not kept else 1.0], device=self.device)
        if _all_sum(fits).item() == _world_size():
            self.kept = {k: torch.cat([b[k] for b in kept]) for k in kept[0]}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self.epoch()


def _batches(cfg: dict[str, Any], tc: TrainConfig, device) -> tuple[ShardBatches, ShardBatches]:
    """Batches of this worker's part of the training and validation windows (split by the driver)."""
    train, val = (cfg["shards"][k][ray.train.get_context().get_world_rank()] for k in ("train", "val"))
    keep = tc.keep_mb << 20
    return (
        ShardBatches(train, tc.batch_size, device, keep, tc.shuffle_buffer, tc.seed),
        ShardBatches(val, tc.batch_size, device, keep),
    )


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _all_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t


@torch.no_grad()
def validate(model: AudioVAE, batches, loss: LossConfig, device) -> dict[str, float]:
    """Negative ELBO (at full beta) per mel frame, its terms, active dims and PCA figures, over
    `batches` (a `ShardBatches`)."""
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # recon, kl, batches
    kl_dims = torch.zeros(model.cfg.latent_dim, dtype=torch.float64, device=device)
    means = []
    for batch in batches:
        x = batch["logmel"]
        out = model(x)
        terms = elbo_terms(out["recon"], model.normalize(x), out["mean"], out["logvar"])
        sums += torch.tensor([terms["recon"].item(), terms["kl"].item(), 1.0], dtype=torch.float64, device=device)
        kl_dims += kl_per_dim(out["mean"], out["logvar"]).double()
        if sum(len(m) for m in means) < PCA_MAX_FRAMES:
            means.append(out["mean"].transpose(1, 2).reshape(-1, model.cfg.latent_dim).cpu())
    _all_sum(sums), _all_sum(kl_dims)
    n = max(1.0, sums[2].item())
    recon, kl = sums[0].item() / n, sums[1].item() / n
    metrics = {"val_loss": recon + loss.beta * kl, "val_recon": recon, "val_kl": kl}
    metrics["active_dims"] = active_dims(kl_dims / n)
    if means:
        metrics.update(pca_components(torch.cat(means)))
    model.train()
    return metrics


def _report(
    metrics: dict[str, float],
    model: AudioVAE,
    opt,
    cfg: dict[str, Any],
    step: int,
    epoch: int,
    history,
    resumed_at,
    vocoder: Vocoder | None = None,
    discriminator: dict[str, Any] | None = None,
    checkpoint: bool = True,
) -> None:
    """Every rank reports; with `checkpoint`, rank 0 attaches the checkpoint (with the vocoder in
    its stage)."""
    if not checkpoint or ray.train.get_context().get_world_rank() != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as d:
        save_checkpoint(
            d,
            model,
            FeatureConfig.from_dict(cfg["features"]),
            LossConfig.from_dict(cfg["loss"]),
            step,
            epoch,
            opt,
            {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
            vocoder=vocoder,
            stage="vae" if vocoder is None else "vocoder",
            discriminator=discriminator,
        )
        torch.save({"history": history, "resumed_at": resumed_at}, os.path.join(d, "history.pt"))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))


def train_loop_per_worker(cfg: dict[str, Any]) -> None:
    tc, loss_cfg = TrainConfig.from_dict(cfg["train"]), LossConfig.from_dict(cfg["loss"])
    features = FeatureConfig.from_dict(cfg["features"])
    rank0 = ray.train.get_context().get_world_rank() == 0
    torch.manual_seed(tc.seed)
    model = build_vae(ModelConfig.from_dict(cfg["model"]), loss_cfg)
    state = _restore(model)
    device = ray.train.torch.get_device()
    ddp = ray.train.torch.prepare_model(model)
    model = model.to(device)
    n_nodes = _count_nodes()
    if rank0:
        n, threads = ray.train.get_context().get_world_size(), torch.get_num_threads()
        say(f"raydist: {n} worker{'s' * (n > 1)} on {n_nodes} node{'s' * (n_nodes > 1)}, {threads} torch threads each")
    opt = make_optimizer(model, tc)
    step, epoch, epoch_step, history, resumed_at = 0, 0, 0, [], []
    if state is not None:
        if state["optimizer"] is not None:
            opt.load_state_dict(state["optimizer"])
        step, epoch = state["step"], state["epoch"]
        epoch_step = int(state["metrics"].get("epoch_step", 0))
        history, resumed_at = _history(ray.train.get_checkpoint())
        resumed_at.append(step)  # one entry per restart: a lost worker, a crash, or --resume
        if rank0:
            say(f"raydist: resumed at step {step} (epoch {epoch + 1}, batch {epoch_step})")
    train_batches, val_batches = _batches(cfg, tc, device)
    use_bf16 = device.type == "cuda"
    if step == 0:
        initial = validate(model, val_batches, loss_cfg, device)
        history.append({"epoch": 0, "step": 0, **initial})
        if rank0:
            say(f"raydist: step 0 val_loss {initial['val_loss']:.3f}")
    last_report = 0.0
    while epoch < tc.epochs:
        sums = torch.zeros(4, dtype=torch.float64)  # loss, recon, kl, batches
        clock = Clock({"report": last_report})
        for i, batch in enumerate(clock.wrap(train_batches.epoch(epoch), "data")):
            if i < epoch_step:  # resumed mid-epoch: these batches were already taken
                continue
            with clock("step"):
                terms = train_step(
                    model, batch["logmel"], opt, step, tc, loss_cfg, features.frame_rate, forward=ddp, bf16=use_bf16
                )
            step, epoch_step = step + 1, i + 1
            sums += torch.tensor(
                [terms["loss"].item(), terms["recon"].item(), terms["kl"].item(), 1.0], dtype=torch.float64
            )
            if step % tc.checkpoint_every == 0:
                progress = {"step": step, "epoch": epoch, "epoch_step": epoch_step}
                with clock("checkpoint"):
                    _report(progress, model, opt, cfg, step, epoch, history, resumed_at)
        epoch, epoch_step = epoch + 1, 0
        n = max(1.0, sums[3].item())
        metrics = {
            "step": step,
            "epoch": epoch,
            "epoch_step": 0,
            "nodes": n_nodes,
            "loss": sums[0].item() / n,
            "recon": sums[1].item() / n,
            "kl": sums[2].item() / n,
        }
        with clock("validate"):
            metrics.update(validate(model, val_batches, loss_cfg, device))
        metrics.update(clock.seconds())
        history.append(metrics)
        if rank0:
            say(
                f"raydist: epoch {epoch}/{tc.epochs} step {step} loss {metrics['loss']:.3f} recon {metrics['recon']:.3f} "
                f"kl {metrics['kl']:.3f} | val {metrics['val_loss']:.3f} active {metrics['active_dims']}/"
                f"{model.cfg.latent_dim} pca90/95/99 {metrics.get('pca90')}/{metrics.get('pca95')}/{metrics.get('pca99')}"
            )
        reported = time.perf_counter()
        # a checkpoint every checkpoint_every steps (above) and after the last epoch: a short epoch
        # does not pay for one, and resuming works from a mid-epoch checkpoint
        _report(metrics, model, opt, cfg, step, epoch, history, resumed_at, checkpoint=epoch == tc.epochs)
        last_report = time.perf_counter() - reported  # counted in the next epoch's figures


@torch.no_grad()
def validate_vocoder(vocoder: Vocoder, vae: AudioVAE, logmel, batches, device) -> dict[str, float]:
    """Log-mel L1 and multi-resolution STFT loss of whole validation windows, through the codec."""
    vocoder.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # mel, stft, batches
    for batch in batches:
        wave = batch["wave"]
        pred = vocoder(*codec_logmel(vae, logmel(wave)))
        terms = vocoder_terms(pred.float(), wave[..., : pred.shape[-1]], logmel)
        sums += torch.tensor([terms["mel"].item(), terms["stft"].item(), 1.0], dtype=torch.float64, device=device)
    _all_sum(sums)
    n = max(1.0, sums[2].item())
    vocoder.train()
    return {"val_mel": sums[0].item() / n, "val_stft": sums[1].item() / n}


def vocoder_loop_per_worker(cfg: dict[str, Any]) -> None:
    """Train the waveform decoder of the VAE in cfg["vae_state"] (frozen) on "wave" windows."""
    tc, vcfg = TrainConfig.from_dict(cfg["train"]), VocoderConfig.from_dict(cfg["vocoder"])
    features = FeatureConfig.from_dict(cfg["features"])
    rank0 = ray.train.get_context().get_world_rank() == 0
    device = ray.train.torch.get_device()
    vae = build_model(cfg["vae_state"]).to(device).eval().requires_grad_(False)
    logmel = LogMel(features).to(device)
    torch.manual_seed(tc.seed)
    vocoder = Vocoder(vcfg, features, vae.cfg)
    start = cfg["vae_state"]
    if "vocoder" in start and VocoderConfig.from_dict(start["vocoder_config"]).same_shape(vcfg):
        vocoder.load_state_dict(start["vocoder"])  # --model already had a vocoder: train it on
    state = _restore(vocoder, "vocoder")
    ddp = ray.train.torch.prepare_model(vocoder)
    vocoder = vocoder.to(device)
    opt = make_optimizer(vocoder, tc)
    disc = disc_ddp = disc_opt = None
    if vcfg.adversarial > 0:
        disc = Discriminator()
        saved = (state or start).get("discriminator")
        if saved is not None:
            disc.load_state_dict(saved["model"])
        disc_ddp = ray.train.torch.prepare_model(disc)
        disc = disc.to(device)
        disc_opt = make_optimizer(disc, tc)
        if state is not None and saved is not None:
            disc_opt.load_state_dict(saved["optimizer"])
    step, epoch, epoch_step, history, resumed_at = 0, 0, 0, [], []
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        step, epoch = state["step"], state["epoch"]
        epoch_step = int(state["metrics"].get("epoch_step", 0))
        history, resumed_at = _history(ray.train.get_checkpoint())
        resumed_at.append(step)
        if rank0:
            say(f"raydist: resumed the vocoder at step {step} (epoch {epoch + 1}, batch {epoch_step})")
    train_batches, val_batches = _batches(cfg, tc, device)
    use_bf16 = device.type == "cuda"
    while epoch < tc.epochs:
        sums = torch.zeros(4, dtype=torch.float64)  # loss, mel, stft, batches
        for i, batch in enumerate(train_batches.epoch(epoch)):
            if i < epoch_step:
                continue
            terms = vocoder_step(
                vocoder, vae, logmel, batch["wave"], opt, tc, vcfg, ddp, use_bf16, disc, disc_opt, disc_ddp
            )
            step, epoch_step = step + 1, i + 1
            sums += torch.tensor(
                [terms["loss"].item(), terms["mel"].item(), terms["stft"].item(), 1.0], dtype=torch.float64
            )
            if step % tc.checkpoint_every == 0:
                progress = {"step": step, "epoch": epoch, "epoch_step": epoch_step}
                _report(progress, vae, opt, cfg, step, epoch, history, resumed_at, vocoder, _disc_state(disc, disc_opt))
        epoch, epoch_step = epoch + 1, 0
        n = max(1.0, sums[3].item())
        metrics = {"step": step, "epoch": epoch, "epoch_step": 0, "loss": sums[0].item() / n}
        metrics.update(mel=sums[1].item() / n, stft=sums[2].item() / n)
        metrics.update(validate_vocoder(vocoder, vae, logmel, val_batches, device))
        history.append(metrics)
        if rank0:
            say(
                f"raydist: vocoder epoch {epoch}/{tc.epochs} step {step} mel {metrics['mel']:.3f} "
                f"stft {metrics['stft']:.3f} | val mel {metrics['val_mel']:.3f} stft {metrics['val_stft']:.3f}"
            )
        last = epoch == tc.epochs  # checkpoints as in the VAE loop
        _report(metrics, vae, opt, cfg, step, epoch, history, resumed_at, vocoder, _disc_state(disc, disc_opt), last)


class Clock:
    """Wall seconds per part of an epoch (data, step, validate, checkpoint): the epoch's metrics
    say where training time goes (bench/bench_train.py reads them)."""

    def __init__(self, parts: dict[str, float] | None = None) -> None:
        self.parts = dict(parts or {})

    @contextmanager
    def __call__(self, part: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.parts[part] = self.parts.get(part, 0.0) + time.perf_counter() - start

    def wrap(self, items, part: str):
        """The items of an iterator, the time spent waiting for each counted as `part`."""
        it = iter(items)
        while True:
            with self(part):
                item = next(it, _END)
            if item is _END:
                return
            yield item

    def seconds(self) -> dict[str, float]:
        return {f"time_{k}_s": round(v, 3) for k, v in self.parts.items()}


_END = object()


def _disc_state(disc, disc_opt) -> dict[str, Any] | None:
    return None if disc is None else {"model": disc.state_dict(), "optimizer": disc_opt.state_dict()}


def _count_nodes() -> int:
    """Distinct Ray nodes the worker group runs on (all ranks take part)."""
    node = ray.get_runtime_context().get_node_id()
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    nodes: list = [None] * dist.get_world_size()
    dist.all_gather_object(nodes, node)
    return len(set(nodes))


def _history(ckpt) -> tuple[list[dict[str, Any]], list[int]]:
    """(per-epoch metrics, steps at which training resumed) saved with a checkpoint."""
    with ckpt.as_directory() as d:
        path = os.path.join(d, "history.pt")
        saved = torch.load(path, weights_only=True) if os.path.exists(path) else {}
    return saved.get("history", []), saved.get("resumed_at", [])

"""The product's commands: train, embed, compress, decompress, generate, demo. Each parses
options, builds configs, checks paths before Ray starts, and calls one library function."""

from __future__ import annotations

from typing import List, Optional

import typer

from raydist.cli.options import (
    Actors,
    Address,
    BatchSize,
    CommitEvery,
    CommitSeconds,
    CpusPerActor,
    EndpointUrl,
    GpusPerActor,
    Inputs,
    Model,
    RetryErrors,
    check_local_inputs,
    fail,
    resources,
    user_errors,
)
from raydist.config import LossConfig, ModelConfig, OutputConfig, ResourceConfig, SegmentConfig, TrainConfig

VOCODER_EPOCHS = 100  # the vocoder needs ~1,000+ steps where the VAE needs ~300 (README, codec benchmark)


def train(
    inputs: Inputs,
    out: str = typer.Option(..., "--out", help="Directory or s3:// URI for checkpoints and out/model.pt."),
    resume: bool = typer.Option(False, help="Continue the run already in --out from its latest checkpoint."),
    workers: int = typer.Option(
        TrainConfig.workers,
        help="Ray Train workers (DDP ranks). 0: one per GPU when GPUs are used; on CPUs one per node, "
        "each with all of the smallest node's CPUs as torch threads (nodes counted when training starts).",
    ),
    epochs: Optional[int] = typer.Option(
        None,
        help=f"Passes over the training windows (default {TrainConfig.epochs}; {VOCODER_EPOCHS} for --stage vocoder).",
    ),
    batch_size: int = typer.Option(TrainConfig.batch_size, help="Windows per worker per step."),
    lr: float = typer.Option(TrainConfig.lr, help="Adam learning rate."),
    use_gpu: str = typer.Option(TrainConfig.use_gpu, help="auto | yes | no."),
    cpus_per_worker: float = typer.Option(
        TrainConfig.cpus_per_worker,
        help="CPUs each worker reserves (its torch threads). 0: a whole node for --workers 0 on CPUs, else 1.",
    ),
    gpus_per_worker: float = typer.Option(TrainConfig.gpus_per_worker, help="GPUs each worker reserves (with GPUs)."),
    checkpoint_every: int = typer.Option(
        TrainConfig.checkpoint_every,
        help="Steps between checkpoints (and one at the end): at most this many steps are lost to a crash.",
    ),
    max_failures: int = typer.Option(TrainConfig.max_failures, help="Worker-group restarts allowed."),
    keep_mb: int = typer.Option(
        TrainConfig.keep_mb,
        help="MB of training windows a worker keeps in memory after the first epoch (later epochs then "
        "skip Ray Data's start of a pass); a larger shard streams every epoch. 0: always stream.",
    ),
    placement: str = typer.Option(TrainConfig.placement, help="PACK | SPREAD: spread puts workers on different nodes."),
    seed: int = typer.Option(TrainConfig.seed, help="Model initialisation seed."),
    preset: str = typer.Option(
        "small", help="Model shape: small (2-core laptop, demo, CI) | base (GPU nodes). Saved in the checkpoint."
    ),
    latent_dim: Optional[int] = typer.Option(None, help="Latent channels per latent frame (default: the preset's)."),
    hidden: Optional[int] = typer.Option(None, help="Conv channels (default: the preset's)."),
    beta: float = typer.Option(LossConfig.beta, help="KL weight after warm-up."),
    free_bits: float = typer.Option(LossConfig.free_bits, help="Free nats per latent dim and frame."),
    contrast: float = typer.Option(
        LossConfig.contrast, help="Weight of the invariance term between two crops of a clip (0 = plain ELBO)."
    ),
    stage: str = typer.Option(
        "vae",
        help="vae: train the VAE. vocoder: train a learned waveform decoder for the VAE in --model "
        "(frozen); OUT/model.pt then holds both, and decompress/generate use it instead of Griffin-Lim.",
    ),
    model: Optional[str] = typer.Option(
        None, "--model", help="The VAE checkpoint a --stage vocoder run decodes (a vocoder in it is trained on)."
    ),
    adversarial: Optional[float] = typer.Option(
        None, help="--stage vocoder: weight of the GAN term (multi-resolution spectrogram discriminator); 0 = off."
    ),
    address: Address = None,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Train the audio VAE (or, with --stage vocoder, its waveform decoder) on Ray Train; writes
    checkpoints and OUT/model.pt."""
    with user_errors():
        if stage not in ("vae", "vocoder"):
            raise ValueError(f"--stage must be vae or vocoder, got {stage!r}")
        if (stage == "vocoder") != (model is not None):
            raise ValueError("--stage vocoder needs --model (the VAE to decode); --model is only for that stage")
        if epochs is None:
            epochs = VOCODER_EPOCHS if stage == "vocoder" else TrainConfig.epochs
        cfg = TrainConfig(
            workers=workers,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            use_gpu=use_gpu,
            cpus_per_worker=cpus_per_worker,
            gpus_per_worker=gpus_per_worker,
            checkpoint_every=checkpoint_every,
            max_failures=max_failures,
            keep_mb=keep_mb,
            placement=placement,
            seed=seed,
        )
        shape = {k: v for k, v in (("latent_dim", latent_dim), ("hidden", hidden)) if v is not None}
        model_cfg = ModelConfig.from_preset(preset, **shape)
        loss_cfg = LossConfig(beta=beta, free_bits=free_bits, contrast=contrast)
    check_local_inputs(inputs, model=model)
    from raydist.cluster import session
    from raydist.config import FeatureConfig
    from raydist.io.inputs import storage_options_for
    from raydist.train import trainer

    session.init_ray(address)
    with user_errors(trainer.TrainError):
        result = trainer.train(
            inputs,
            out,
            cfg,
            model_cfg,
            FeatureConfig(),
            loss_cfg,
            resume,
            storage_options_for(endpoint_url),
            vocoder_of=model,
            vocoder_overrides=None if adversarial is None else {"adversarial": adversarial},
        )
    typer.echo(f"raydist: {result.summary()}")


def embed(
    inputs: Inputs,
    model: Optional[str] = typer.Option(
        None, "--model", help="Checkpoint: model.pt or its directory (local or s3://). Or give --encoder."
    ),
    encoder: Optional[str] = typer.Option(
        None,
        "--encoder",
        help="Embed with another model instead: any module implementing the HEAR 2021 API "
        "(an importable name, e.g. hearbaseline.naive, or a .py file).",
    ),
    weights: Optional[str] = typer.Option(None, "--weights", help="--encoder: the path its load_model takes."),
    out: str = typer.Option(..., "--out", help="Output directory or s3:// URI; rerun the same command to resume."),
    batch_size: BatchSize = ResourceConfig.batch_size,
    actors: Actors = ResourceConfig.actors,
    cpus_per_actor: CpusPerActor = ResourceConfig.cpus_per_actor,
    gpus_per_actor: GpusPerActor = ResourceConfig.gpus_per_actor,
    rows_per_file: int = typer.Option(OutputConfig.rows_per_file, help="Clips per output Parquet file."),
    dtype: str = typer.Option(OutputConfig.dtype, help="float16 | float32 for frame-level latents."),
    keep_logvar: bool = typer.Option(OutputConfig.keep_logvar, help="Also write per-frame log-variances."),
    commit_every: CommitEvery = OutputConfig.commit_every,
    commit_seconds: CommitSeconds = OutputConfig.commit_seconds,
    merge_distance: float = typer.Option(
        SegmentConfig.merge_distance,
        help="segments/: merge neighbouring regions closer than this (higher: fewer, longer segments).",
    ),
    cepstral_weight: float = typer.Option(
        SegmentConfig.cepstral_weight,
        help="segments/: weight of the spectral envelope (cepstra) beside the latents; 0 = latents only.",
    ),
    placement: str = typer.Option(
        SegmentConfig.placement,
        help="segments/: where a boundary across a pause goes: 'onset' (the new source's first sound) or 'middle'.",
    ),
    retry_errors: RetryErrors = False,
    address: Address = None,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Embed audio into Parquet: frames/, clips/, events/, segments/, errors/, with raydist's VAE
    (--model) or any HEAR-API model (--encoder). Exactly once and resumable: finished work is committed every --commit-seconds; Ctrl-C commits what is finished
    and says how to continue; rerunning the same command processes only what is missing."""
    res = resources(batch_size, actors, cpus_per_actor, gpus_per_actor)
    with user_errors():
        output = OutputConfig(
            rows_per_file=rows_per_file,
            dtype=dtype,
            keep_logvar=keep_logvar,
            commit_every=commit_every,
            commit_seconds=commit_seconds,
        )
        segments = SegmentConfig(merge_distance=merge_distance, cepstral_weight=cepstral_weight, placement=placement)
    if (model is None) == (encoder is None):
        fail("give --model CKPT (raydist's VAE) or --encoder MODULE (a HEAR-API model), one of the two")
    if weights and not encoder:
        fail("--weights goes with --encoder (a checkpoint given by --model holds its own)")
    check_local_inputs(inputs, **({"model": model} if model else {"weights": weights}))
    if encoder:
        from raydist.embedding.encoders import hear_uri, import_module

        with user_errors():
            import_module(encoder)  # exit 2 before Ray starts: missing, broken, or not the HEAR API
        model = hear_uri(encoder, weights)
    from raydist.cluster.session import init_ray
    from raydist.io.inputs import storage_options_for
    from raydist.pipeline.embed import embed as run_embed
    from raydist.pipeline.runner import RunFailed

    init_ray(address)
    with user_errors(RunFailed):
        summary = run_embed(inputs, out, model, res, output, segments, retry_errors, storage_options_for(endpoint_url))
    typer.echo(f"raydist: {summary.table()}")


def compress(
    inputs: Inputs,
    model: Model,
    out: str = typer.Option(..., "--out", help="Output directory or s3:// URI (codes/, errors/, _runs/)."),
    batch_size: BatchSize = ResourceConfig.batch_size,
    actors: Actors = ResourceConfig.actors,
    cpus_per_actor: CpusPerActor = ResourceConfig.cpus_per_actor,
    gpus_per_actor: GpusPerActor = ResourceConfig.gpus_per_actor,
    commit_every: CommitEvery = OutputConfig.commit_every,
    commit_seconds: CommitSeconds = OutputConfig.commit_seconds,
    retry_errors: RetryErrors = False,
    address: Address = None,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Compress audio into int8 latents (about 3.3 kbps payload); prints bitrate and ratios.
    Committed in increments and resumable, like embed."""
    res = resources(batch_size, actors, cpus_per_actor, gpus_per_actor)
    with user_errors():
        output = OutputConfig(commit_every=commit_every, commit_seconds=commit_seconds)
    check_local_inputs(inputs, model=model)
    from raydist.cluster.session import init_ray
    from raydist.io.inputs import storage_options_for
    from raydist.pipeline.compress import codec_report
    from raydist.pipeline.compress import compress as run_compress
    from raydist.pipeline.runner import RunFailed

    so = storage_options_for(endpoint_url)
    init_ray(address)
    with user_errors(RunFailed):
        summary = run_compress(inputs, out, model, res, output, retry_errors, so)
    typer.echo(f"raydist: {summary.table('compressed')}")
    if summary.ok or summary.already_done:
        r = codec_report(out, so)
        typer.echo(
            f"raydist: {r['clips']} clips, {r['payload_kbps']:.2f} kbps latent payload, {r['file_kbps']:.2f} kbps "
            f"as written; {r['ratio_vs_source']:.1f}x smaller than the source files, {r['ratio_vs_pcm16']:.1f}x than 16-bit PCM"
        )


def decompress(
    compressed: str = typer.Argument(..., help="Output of raydist compress (directory or s3:// URI)."),
    model: str = typer.Option(..., "--model", help="The checkpoint that compressed it."),
    out: str = typer.Option(..., "--out", help="Directory or s3:// URI for one audio file per clip."),
    format: str = typer.Option("wav", help="wav | flac."),
    actors: Actors = ResourceConfig.actors,
    cpus_per_actor: CpusPerActor = ResourceConfig.cpus_per_actor,
    address: Address = None,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Decode a compressed set back to audio at each clip's original rate and duration."""
    from raydist.codec.format import DECODED_FORMATS

    res = resources(ResourceConfig.batch_size, actors, cpus_per_actor, ResourceConfig.gpus_per_actor)
    if format not in DECODED_FORMATS:
        fail(f"--format must be one of {', '.join(DECODED_FORMATS)}, got {format!r}")
    check_local_inputs([compressed], model=model)
    from raydist.cluster.session import init_ray
    from raydist.io.inputs import storage_options_for
    from raydist.pipeline.decompress import decompress as run_decompress

    init_ray(address)
    with user_errors():
        summary = run_decompress(compressed, model, out, format, res, storage_options_for(endpoint_url))
    typer.echo(f"raydist: {summary.line()}")
    if summary.failed:  # no error table holds them: the exit code says so
        fail(
            f"{len(summary.failed)} of {summary.ok + len(summary.failed)} clips could not be decoded (listed above)", 1
        )


def generate(
    model: Model,
    out: str = typer.Option(..., "--out", help="Directory for the generated files."),
    n: int = typer.Option(4, "--n", help="Files to sample from the prior."),
    seconds: float = typer.Option(2.0, help="Length of each sampled file."),
    seed: int = typer.Option(0, help="Random seed."),
    interpolate: Optional[List[str]] = typer.Option(
        None, help="Two audio files: decode a path between their latents (give twice)."
    ),
    steps: int = typer.Option(5, help="Points on the interpolation path."),
) -> None:
    """Sample latents from the prior (or interpolate two clips' latents) and decode them to audio."""
    check_local_inputs([], model=model, interpolate=interpolate)
    if interpolate and len(interpolate) != 2:
        fail(f"--interpolate needs exactly two files, got {len(interpolate)}")
    if n < 1 or seconds <= 0 or steps < 2:
        fail(f"--n must be >= 1, --seconds > 0 and --steps >= 2; got {n}, {seconds}, {steps}")
    import torch

    from raydist.codec.generate import interpolate as run_interpolate
    from raydist.codec.generate import sample
    from raydist.codec.inversion import decoder_name
    from raydist.model.checkpoint import load_model

    with user_errors():
        m = load_model(model, device="cuda" if torch.cuda.is_available() else "cpu")
        if interpolate:
            paths = run_interpolate(m, interpolate[0], interpolate[1], out, steps)
        else:
            paths = sample(m, out, n, seconds, seed)
    typer.echo(f"raydist: wrote {len(paths)} files to {out}, decoded by {decoder_name(m)}")


def runs(
    out: str = typer.Argument(..., help="Output of embed or compress (directory or s3:// URI)."),
    endpoint_url: EndpointUrl = None,
) -> None:
    """List the runs on an output: state, commits, inputs kept, failed and dropped (committed first
    by another run), audio hours; and the files per table."""
    from raydist.io.inputs import storage_options_for
    from raydist.io.runs import describe
    from raydist.io.store import RunStore

    with user_errors():
        store = RunStore(out, storage_options_for(endpoint_url))
        rows = describe(store)
        files = {t: len(store.committed_files(t)) for t in sorted({t for e in store.log() for t in e["files"]})}
    if not rows:
        fail(f"{out} holds no raydist run")
    head = f"{'run':<24} {'kind':<8} {'state':<12} {'started':<19} {'commits':>7} {'ok':>9} {'failed':>7} {'dropped':>7} {'audio h':>8}"
    typer.echo(head)
    for r in rows:
        typer.echo(
            f"{r['run']:<24} {r['kind']:<8} {r['state']:<12} {r['started']:<19} {r['commits']:>7} "
            f"{r['ok']:>9} {r['failed']:>7} {r['dropped']:>7} {r['audio_h']:>8.2f}"
        )
    typer.echo(
        f"{len(rows)} runs, {len(store.log())} commits; files: " + ", ".join(f"{t} {n}" for t, n in files.items())
    )


def compact(
    out: str = typer.Argument(..., help="Output of embed or compress (directory or s3:// URI)."),
    target_mb: float = typer.Option(256.0, "--target-mb", help="Size of the files it writes, in MB."),
    table: Optional[List[str]] = typer.Option(None, "--table", help="Only this table (repeatable); default: all."),
    address: Address = None,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Rewrite an output's small files into files of about --target-mb, as one commit: readers
    see the same rows before and after, and runs on the same output may go on meanwhile. Worth
    it when a table holds thousands of files (many commits, or small --rows-per-file): queries
    and reruns open every file."""
    from raydist.io.schema import TABLES

    if target_mb <= 0:
        fail(f"--target-mb must be > 0, got {target_mb}")
    bad = [t for t in table or () if t not in TABLES]
    if bad:
        fail(f"unknown table {bad[0]!r}; choose from {', '.join(TABLES)}")
    from raydist.cluster.session import init_ray
    from raydist.io.inputs import storage_options_for
    from raydist.pipeline.compact import compact as run_compact

    init_ray(address)
    with user_errors():
        result = run_compact(out, target_mb, tuple(table or TABLES), storage_options_for(endpoint_url))
    typer.echo(f"raydist: {result.line()}")


def demo(
    out: str = typer.Option("demo-out", "--out", help="Directory for the corpus, the model and the outputs."),
    clips: int = typer.Option(200, help="Clips in the built-in synthetic corpus."),
    epochs: int = typer.Option(15, help="Training epochs."),
    workers: int = typer.Option(0, help="Ray Train workers (0: one per node, with all its CPUs)."),
) -> None:
    """Run the whole product on a local Ray and a built-in corpus: no data or cluster needed."""
    if clips < 20 or epochs < 1 or workers < 0:
        fail(
            f"--clips must be >= 20 (a validation split and probe folds need them), --epochs >= 1, --workers >= 0; "
            f"got {clips}, {epochs}, {workers}"
        )
    from raydist.demo.run import run_demo

    with user_errors():
        run_demo(out, clips=clips, epochs=epochs, workers=workers)

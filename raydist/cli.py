"""The `raydist` command line. Each command parses options, builds configs and calls one library
function; paths and options are checked before Ray starts.

    raydist demo                       # built-in corpus -> train -> embed, on a local Ray
    raydist train CORPUS --out runs/a  # train the VAE with Ray Train
    raydist embed INPUT... --model runs/a/model.pt --out emb/
"""

from __future__ import annotations

import os
from typing import List, Optional

import typer

from raydist.config import EmbedConfig, FeatureConfig, LossConfig, ModelConfig, TrainConfig

app = typer.Typer(help=__doc__.split("\n\n")[0], no_args_is_help=True, add_completion=False)

ADDRESS_HELP = "Ray to use: empty for a local embedded Ray, 'auto' or ray://HOST:10001 for a cluster."
ENDPOINT_HELP = "S3-compatible endpoint URL for s3:// paths (credentials from the usual AWS environment)."


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@app.command()
def train(
    inputs: List[str] = typer.Argument(..., help="Folders, globs, s3:// prefixes or CSV/Parquet manifests of audio."),
    out: str = typer.Option(..., "--out", help="Directory or s3:// URI for checkpoints and out/model.pt."),
    resume: bool = typer.Option(False, help="Continue the run already in --out from its latest checkpoint."),
    workers: int = typer.Option(TrainConfig.workers, help="Ray Train workers (DDP ranks)."),
    epochs: int = typer.Option(TrainConfig.epochs, help="Passes over the training windows."),
    batch_size: int = typer.Option(TrainConfig.batch_size, help="Windows per worker per step."),
    lr: float = typer.Option(TrainConfig.lr, help="Adam learning rate."),
    use_gpu: str = typer.Option(TrainConfig.use_gpu, help="auto | yes | no."),
    cpus_per_worker: float = typer.Option(TrainConfig.cpus_per_worker, help="CPUs each worker reserves."),
    gpus_per_worker: float = typer.Option(TrainConfig.gpus_per_worker, help="GPUs each worker reserves (with GPUs)."),
    checkpoint_every: int = typer.Option(TrainConfig.checkpoint_every, help="Steps between checkpoints."),
    max_failures: int = typer.Option(TrainConfig.max_failures, help="Worker-group restarts allowed."),
    placement: str = typer.Option(TrainConfig.placement, help="PACK | SPREAD: spread puts workers on different nodes."),
    latent_dim: int = typer.Option(ModelConfig.latent_dim, help="Latent channels per latent frame."),
    beta: float = typer.Option(LossConfig.beta, help="KL weight after warm-up."),
    free_bits: float = typer.Option(LossConfig.free_bits, help="Free nats per latent dim and frame."),
    address: Optional[str] = typer.Option(None, help=ADDRESS_HELP),
    endpoint_url: Optional[str] = typer.Option(None, help=ENDPOINT_HELP),
) -> None:
    """Train the audio VAE on Ray Train; writes checkpoints and OUT/model.pt."""
    try:
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
            placement=placement,
        )
        model_cfg = ModelConfig(latent_dim=latent_dim)
        loss_cfg = LossConfig(beta=beta, free_bits=free_bits)
    except ValueError as e:
        _fail(str(e))
    _check_local_inputs(inputs)
    from raydist.inputs import storage_options_for
    from raydist.session import init_ray
    from raydist.train.trainer import TrainError
    from raydist.train.trainer import train as run_training

    init_ray(address)
    try:
        result = run_training(
            inputs, out, cfg, model_cfg, FeatureConfig(), loss_cfg, resume, storage_options_for(endpoint_url)
        )
    except (TrainError, ValueError) as e:
        _fail(str(e))
    typer.echo(f"raydist: {result.summary()}")


@app.command()
def embed(
    inputs: List[str] = typer.Argument(
        ..., help="Folders, globs, s3:// prefixes or CSV/Parquet manifests (uri, id, label, split)."
    ),
    model: str = typer.Option(..., "--model", help="Checkpoint: model.pt or its directory (local or s3://)."),
    out: str = typer.Option(..., "--out", help="Output directory or s3:// URI; rerun the same command to resume."),
    batch_size: int = typer.Option(EmbedConfig.batch_size, help="Clips per encoder call."),
    actors: int = typer.Option(EmbedConfig.actors, help="Encoder actors (0: one per GPU, else one per CPU)."),
    cpus_per_actor: float = typer.Option(EmbedConfig.cpus_per_actor, help="CPUs per encoder actor."),
    gpus_per_actor: float = typer.Option(EmbedConfig.gpus_per_actor, help="GPUs per encoder actor (0: auto)."),
    rows_per_file: int = typer.Option(EmbedConfig.rows_per_file, help="Clips per output Parquet file."),
    dtype: str = typer.Option(EmbedConfig.dtype, help="float16 | float32 for frame-level latents."),
    keep_logvar: bool = typer.Option(EmbedConfig.keep_logvar, help="Also write per-frame log-variances."),
    retry_errors: bool = typer.Option(
        False,
        "--retry-errors",
        help="Process again inputs that failed in earlier runs; their old error rows are replaced.",
    ),
    address: Optional[str] = typer.Option(None, help=ADDRESS_HELP),
    endpoint_url: Optional[str] = typer.Option(None, help=ENDPOINT_HELP),
) -> None:
    """Embed audio into Parquet: frames/, clips/, segments/, errors/ (exactly once, resumable)."""
    try:
        cfg = EmbedConfig(
            batch_size=batch_size,
            actors=actors,
            cpus_per_actor=cpus_per_actor,
            gpus_per_actor=gpus_per_actor,
            rows_per_file=rows_per_file,
            dtype=dtype,
            keep_logvar=keep_logvar,
            retry_errors=retry_errors,
        )
    except ValueError as e:
        _fail(str(e))
    _check_local_inputs(inputs)
    _check_local_inputs([model])
    from raydist.inputs import InputError, storage_options_for
    from raydist.model.checkpoint import CheckpointError
    from raydist.pipeline.embed import RunFailed
    from raydist.pipeline.embed import embed as run_embed
    from raydist.pipeline.store import StoreError
    from raydist.session import init_ray

    init_ray(address)
    try:
        summary = run_embed(inputs, out, model, cfg, storage_options_for(endpoint_url))
    except (InputError, CheckpointError, StoreError, RunFailed) as e:
        _fail(str(e))
    typer.echo(f"raydist: {summary.line()}")


@app.command()
def compress(
    inputs: List[str] = typer.Argument(..., help="Folders, globs, s3:// prefixes or CSV/Parquet manifests."),
    model: str = typer.Option(..., "--model", help="Checkpoint: model.pt or its directory."),
    out: str = typer.Option(..., "--out", help="Output directory or s3:// URI (codes/, errors/, _runs/)."),
    batch_size: int = typer.Option(EmbedConfig.batch_size, help="Clips per encoder call."),
    actors: int = typer.Option(EmbedConfig.actors, help="Encoder actors (0: one per GPU, else one per CPU)."),
    cpus_per_actor: float = typer.Option(EmbedConfig.cpus_per_actor, help="CPUs per encoder actor."),
    gpus_per_actor: float = typer.Option(EmbedConfig.gpus_per_actor, help="GPUs per encoder actor (0: auto)."),
    retry_errors: bool = typer.Option(
        False,
        "--retry-errors",
        help="Process again inputs that failed in earlier runs; their old error rows are replaced.",
    ),
    address: Optional[str] = typer.Option(None, help=ADDRESS_HELP),
    endpoint_url: Optional[str] = typer.Option(None, help=ENDPOINT_HELP),
) -> None:
    """Compress audio into int8 latents (about 3.3 kbps payload); prints bitrate and ratios."""
    _check_local_inputs([*inputs, model])
    from raydist.inputs import InputError, storage_options_for
    from raydist.model.checkpoint import CheckpointError
    from raydist.pipeline.codec import codec_report
    from raydist.pipeline.codec import compress as run_compress
    from raydist.pipeline.embed import RunFailed
    from raydist.pipeline.store import StoreError
    from raydist.session import init_ray

    so = storage_options_for(endpoint_url)
    init_ray(address)
    try:
        summary = run_compress(
            inputs,
            out,
            model,
            EmbedConfig(
                batch_size=batch_size,
                actors=actors,
                cpus_per_actor=cpus_per_actor,
                gpus_per_actor=gpus_per_actor,
                retry_errors=retry_errors,
            ),
            so,
        )
    except (InputError, CheckpointError, StoreError, RunFailed) as e:
        _fail(str(e))
    typer.echo(f"raydist: {summary.line('compressed')}")
    if summary.ok or summary.already_done:
        r = codec_report(out, so)
        typer.echo(
            f"raydist: {r['clips']} clips, {r['payload_kbps']:.2f} kbps latent payload, {r['file_kbps']:.2f} kbps "
            f"as written; {r['ratio_vs_source']:.1f}x smaller than the source files, {r['ratio_vs_pcm16']:.1f}x than 16-bit PCM"
        )


@app.command()
def decompress(
    compressed: str = typer.Argument(..., help="Output of raydist compress (directory or s3:// URI)."),
    model: str = typer.Option(..., "--model", help="The checkpoint that compressed it."),
    out: str = typer.Option(..., "--out", help="Directory or s3:// URI for one audio file per clip."),
    format: str = typer.Option("wav", help="wav | flac."),
    actors: int = typer.Option(EmbedConfig.actors, help="Decoder actors (0: one per CPU)."),
    cpus_per_actor: float = typer.Option(EmbedConfig.cpus_per_actor, help="CPUs per decoder actor."),
    address: Optional[str] = typer.Option(None, help=ADDRESS_HELP),
    endpoint_url: Optional[str] = typer.Option(None, help=ENDPOINT_HELP),
) -> None:
    """Decode a compressed set back to audio at each clip's original rate and duration."""
    _check_local_inputs([compressed, model])
    from raydist.inputs import storage_options_for
    from raydist.model.checkpoint import CheckpointError
    from raydist.pipeline.codec import CodecError
    from raydist.pipeline.codec import decompress as run_decompress
    from raydist.session import init_ray

    init_ray(address)
    try:
        cfg = EmbedConfig(actors=actors, cpus_per_actor=cpus_per_actor)
        summary = run_decompress(compressed, model, out, format, cfg, storage_options_for(endpoint_url))
    except (CodecError, CheckpointError) as e:
        _fail(str(e))
    typer.echo(f"raydist: {summary.line()}")


@app.command()
def generate(
    model: str = typer.Option(..., "--model", help="Checkpoint: model.pt or its directory."),
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
    _check_local_inputs([model, *(interpolate or [])])
    from raydist.generation import interpolate as run_interpolate
    from raydist.generation import sample
    from raydist.model.checkpoint import CheckpointError, load_model

    try:
        m = load_model(model)
        if interpolate:
            if len(interpolate) != 2:
                _fail(f"--interpolate needs exactly two files, got {len(interpolate)}")
            paths = run_interpolate(m, interpolate[0], interpolate[1], out, steps)
        else:
            paths = sample(m, out, n, seconds, seed)
    except (CheckpointError, ValueError) as e:
        _fail(str(e))
    typer.echo(f"raydist: wrote {len(paths)} files to {out}")


@app.command("evaluate-codec")
def evaluate_codec(
    originals: str = typer.Argument(..., help="Folder, glob or manifest of the original audio."),
    decoded: str = typer.Argument(..., help="Folder of decoded audio (files named by clip id)."),
    compressed: Optional[str] = typer.Option(None, help="The compressed set, to add its bitrate to the report."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Write the report as JSON here."),
) -> None:
    """Per-clip and mean log-mel L1, multi-resolution STFT distance and SI-SDR of decoded audio."""
    import json

    from raydist.pipeline.codec import codec_report
    from raydist.quality import evaluate_pairs, format_table

    _check_local_inputs([originals, decoded])
    try:
        report = evaluate_pairs([originals], [decoded])
    except ValueError as e:
        _fail(str(e))
    if compressed:
        report["bitrate"] = codec_report(compressed)
    typer.echo(format_table(report))
    if json_out:
        with open(json_out, "w") as f:
            json.dump(report, f, indent=2)
        typer.echo(f"raydist: report written to {json_out}")


@app.command()
def probe(
    embeddings: str = typer.Argument(..., help="Output directory of raydist embed."),
    out: str = typer.Option(..., "--out", help="Directory for probe.json and the pictures."),
    labels: Optional[str] = typer.Option(
        None, help="CSV with id, label (and optional group) columns; default: the labels embed recorded."
    ),
    folds: int = typer.Option(5, help="Cross-validation folds (items of one group share a fold)."),
    baseline: bool = typer.Option(False, help="Also probe log-mel and MFCC mean/std features of the same audio."),
    mlp: bool = typer.Option(False, help="Also run a one-hidden-layer MLP probe on every feature set."),
) -> None:
    """Linear probe (logistic regression, grouped k-fold CV) on the clip embeddings."""
    from raydist.evaluation import run_probe

    _check_local_inputs([embeddings, *([labels] if labels else [])])
    try:
        report = run_probe(embeddings, out, labels, folds, baseline, mlp)
    except ValueError as e:
        _fail(str(e))
    for name in ("vae", "logmel", "mfcc", "vae_mlp", "logmel_mlp", "mfcc_mlp"):
        if name in report:
            typer.echo(f"{name:7s} accuracy {report[name]['accuracy']:.3f}  macro-F1 {report[name]['macro_f1']:.3f}")
    typer.echo(
        f"raydist: {report['clips']} clips, {folds} folds; wrote {out}/probe.json and {', '.join(report['pictures'])}"
    )


@app.command("segment-eval")
def segment_eval(
    embeddings: str = typer.Argument(..., help="Output directory of raydist embed."),
    truth: str = typer.Option(..., "--truth", help="CSV of reference segments: id, start_s, end_s."),
    out: str = typer.Option(..., "--out", help="Directory for segments.json and a novelty picture."),
    baseline: bool = typer.Option(True, help="Also score novelty on raw log-mel."),
) -> None:
    """Boundary precision, recall and F-measure at 0.5 s and 0.25 s tolerance."""
    from raydist.evaluation import run_segment_eval

    _check_local_inputs([embeddings, truth])
    try:
        report = run_segment_eval(embeddings, truth, out, baseline)
    except ValueError as e:
        _fail(str(e))
    for name in ("vae_novelty", "logmel_novelty"):
        if name in report:
            r = report[name]
            typer.echo(f"{name:15s} F@0.5s {r['0.5s']['f_measure']:.3f}  F@0.25s {r['0.25s']['f_measure']:.3f}")
    typer.echo(f"raydist: {report['clips']} clips; wrote {out}/segments.json and {', '.join(report['pictures'])}")


jobs_app = typer.Typer(help="Inspect and stop submitted jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
JOB_ADDRESS_HELP = "Job server of the cluster, e.g. http://127.0.0.1:8265 (through `ray dashboard cluster.yaml`)."


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def submit(
    ctx: typer.Context,
    job: str = typer.Argument(..., help="train | embed | compress"),
    address: str = typer.Option(..., help=JOB_ADDRESS_HELP),
    wait: bool = typer.Option(False, help="Wait for the job to end and print its logs."),
    env: List[str] = typer.Option(
        [],
        help="Environment variable to pass to the job, by name (repeatable). Its value is visible in the job's "
        "runtime_env: give clusters S3 access through an instance profile, not keys.",
    ),
    python: str = typer.Option("python", help="Interpreter on the cluster that runs the job."),
) -> None:
    """Submit a job to a cluster: raydist submit embed --address URL -- s3://b/corpus --model ... --out ..."""
    from raydist import submit as sub

    missing = [name for name in env if name not in os.environ]
    if missing:
        _fail(f"--env names variables that are not set here: {missing}")
    try:
        job_id = sub.submit(job, address, list(ctx.args), {n: os.environ[n] for n in env}, python)
    except sub.SubmitError as e:
        _fail(str(e))
    typer.echo(job_id)
    if wait:
        final = sub.wait(address, job_id)
        typer.echo(sub.logs(address, job_id))
        typer.echo(f"raydist: job {job_id} {final}")
        if final != "SUCCEEDED":
            raise typer.Exit(1)


@jobs_app.command("status")
def jobs_status(job_id: str, address: str = typer.Option(..., help=JOB_ADDRESS_HELP)) -> None:
    """Print a job's status."""
    from raydist import submit as sub

    typer.echo(sub.status(address, job_id))


@jobs_app.command("logs")
def jobs_logs(job_id: str, address: str = typer.Option(..., help=JOB_ADDRESS_HELP)) -> None:
    """Print a job's logs."""
    from raydist import submit as sub

    typer.echo(sub.logs(address, job_id))


@jobs_app.command("stop")
def jobs_stop(job_id: str, address: str = typer.Option(..., help=JOB_ADDRESS_HELP)) -> None:
    """Stop a running job."""
    from raydist import submit as sub

    typer.echo("stopped" if sub.stop(address, job_id) else "not running")


@app.command()
def demo(
    out: str = typer.Option("demo-out", "--out", help="Directory for the corpus, the model and the outputs."),
    clips: int = typer.Option(200, help="Clips in the built-in synthetic corpus."),
    epochs: int = typer.Option(15, help="Training epochs."),
    workers: int = typer.Option(2, help="Ray Train workers."),
) -> None:
    """Run the whole product on a local Ray and a built-in corpus: no data or cluster needed."""
    from raydist.demo import run_demo

    try:
        run_demo(out, clips=clips, epochs=epochs, workers=workers)
    except ValueError as e:
        _fail(str(e))


def _check_local_inputs(inputs: List[str]) -> None:
    for uri in inputs:
        if "://" not in uri and not any(c in uri for c in "*?[") and not os.path.exists(uri):
            _fail(f"input {uri} does not exist")


if __name__ == "__main__":
    app()

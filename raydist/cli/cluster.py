"""Commands for clusters: submit a job to a Ray cluster's job server, and inspect or stop it."""

from __future__ import annotations

import os
from typing import Annotated, List

import typer

from raydist.cli.options import fail, user_errors

JobAddress = Annotated[
    str,
    typer.Option(help="Job server of the cluster, e.g. http://127.0.0.1:8265 (through `ray dashboard cluster.yaml`)."),
]


def submit(
    ctx: typer.Context,
    address: JobAddress,
    job: str = typer.Argument(..., help="train | embed | compress"),
    wait: bool = typer.Option(False, help="Follow the job's log until it ends; exit 1 unless it succeeded."),
    env: List[str] = typer.Option(
        [],
        help="Environment variable to pass to the job, by name (repeatable). Its value is visible in the job's "
        "runtime_env: give clusters S3 access through an instance profile, not keys.",
    ),
    python: str = typer.Option("python", help="Interpreter on the cluster that runs the job."),
) -> None:
    """Submit a job to a cluster: raydist submit embed --address URL -- s3://b/corpus --model ... --out ..."""
    from raydist.cluster import submit as sub

    missing = [name for name in env if name not in os.environ]
    if missing:
        fail(f"--env names variables that are not set here: {missing}")
    with user_errors():
        job_id = sub.submit(job, address, list(ctx.args), {n: os.environ[n] for n in env}, python)
        typer.echo(job_id)
        if wait:  # the job's log as it is written, then its end
            final = sub.follow(address, job_id, lambda text, end="": typer.echo(text, nl=False))
            typer.echo(f"raydist: job {job_id} {final}")
            if final != "SUCCEEDED":
                raise typer.Exit(1)


def jobs_status(job_id: str, address: JobAddress) -> None:
    """Print a job's status."""
    from raydist.cluster import submit as sub

    with user_errors():
        typer.echo(sub.status(address, job_id))


def jobs_logs(job_id: str, address: JobAddress) -> None:
    """Print a job's logs."""
    from raydist.cluster import submit as sub

    with user_errors():
        typer.echo(sub.logs(address, job_id))


def jobs_stop(job_id: str, address: JobAddress) -> None:
    """Stop a running job: it gets SIGTERM, commits what it finished and exits (SIGKILL after 60 s)."""
    from raydist.cluster import submit as sub

    with user_errors():
        typer.echo("stopped" if sub.stop(address, job_id) else "not running")

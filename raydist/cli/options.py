"""What every command shares: option types defined once (embed and compress take the same
resource options), the error exit, and the checks made before Ray starts."""

from __future__ import annotations

import os
import shlex
import sys
from contextlib import contextmanager
from typing import Annotated, Iterator, List, Optional

import typer

from raydist.config import ResourceConfig

ADDRESS_HELP = "Ray to use: empty for a local embedded Ray, 'auto' or ray://HOST:10001 for a cluster."
ENDPOINT_HELP = "S3-compatible endpoint URL for s3:// paths (credentials from the usual AWS environment)."

Inputs = Annotated[
    List[str], typer.Argument(help="Folders, globs, s3:// prefixes or CSV/Parquet manifests (uri, id, label, split).")
]
Model = Annotated[str, typer.Option("--model", help="Checkpoint: model.pt or its directory (local or s3://).")]
Address = Annotated[Optional[str], typer.Option(help=ADDRESS_HELP)]
EndpointUrl = Annotated[Optional[str], typer.Option(help=ENDPOINT_HELP)]
BatchSize = Annotated[int, typer.Option(help="Clips per encoder call.")]
Actors = Annotated[int, typer.Option(help="Model actors (0: one per GPU, else one per CPU).")]
CpusPerActor = Annotated[float, typer.Option(help="CPUs per model actor (fractional leaves room for decoding).")]
GpusPerActor = Annotated[float, typer.Option(help="GPUs per model actor (0: auto, 1 when the cluster has GPUs).")]
CommitEvery = Annotated[
    int, typer.Option(help="Commit after this many inputs (or --commit-seconds, whichever comes first).")
]
CommitSeconds = Annotated[
    float,
    typer.Option(help="Commit finished work at least this often: a crash or Ctrl-C loses at most this much work."),
]
RetryErrors = Annotated[
    bool,
    typer.Option(
        "--retry-errors", help="Process again inputs that failed in earlier runs; their old error rows are replaced."
    ),
]


def fail(message: str, code: int = 2) -> None:
    """`error: message` on the console and exit `code` (2: bad usage, 1: a failure at run time)."""
    from raydist.console import say

    say(typer.style(f"error: {message}", fg=typer.colors.RED))
    raise typer.Exit(code)


def leave(code: int) -> None:
    """Stop this command's Ray (a local one ends with it) and exit with `code` without the
    interpreter's teardown: with torch and Ray loaded it took about 1 s after the work was done,
    and nothing of ours is left to run. The console's pipes are drained first: what Ray prints as
    it shuts down goes to the log, and nothing but the exit follows the shutdown."""
    from raydist.console import end_now, settle

    settle()
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            from raydist.cluster.session import shutdown

            shutdown()
    end_now(code)


@contextmanager
def user_errors(*extra: type[BaseException]) -> Iterator[None]:
    """Turn raydist's errors into one line and their exit code (1 at run time, 2 for bad usage;
    `extra` types and other ValueErrors: 1 and 2), and an interrupt into what was kept, what
    remains and how to continue, with 130/143. Anything else is a bug (`main` reports it)."""
    from raydist.console import say
    from raydist.errors import RaydistError
    from raydist.signals import Interrupted

    try:
        yield
    except Interrupted as e:  # SIGINT/SIGTERM: what was kept, what remains, how to go on
        say(typer.style(f"raydist: {e}. To continue: {continue_command()}", fg=typer.colors.YELLOW))
        if "ray" in sys.modules:  # a local Ray ends with this command: no process left behind
            leave(e.exit_code)
        raise typer.Exit(e.exit_code) from None
    except RaydistError as e:
        fail(str(e), e.exit_code)
    except extra as e:
        fail(str(e), 1)
    except ValueError as e:  # a config's checks: bad option values
        fail(str(e), 2)


def continue_command() -> str:
    """The command line that was run, as `raydist ...`: rerunning it continues where it stopped."""
    args = [a if not a.startswith("--token=") else "--token=..." for a in sys.argv[1:]]
    args = [("..." if i and args[i - 1] == "--token" else a) for i, a in enumerate(args)]  # never print a secret
    if args[:1] == ["train"] and "--resume" not in args:
        args = [*args, "--resume"]  # the run in --out continues from its latest checkpoint
    return shlex.join(["raydist", *args])


def resources(batch_size: int, actors: int, cpus_per_actor: float, gpus_per_actor: float) -> ResourceConfig:
    with user_errors():
        return ResourceConfig(
            batch_size=batch_size, actors=actors, cpus_per_actor=cpus_per_actor, gpus_per_actor=gpus_per_actor
        )


def check_local_inputs(inputs: List[str], **options: str | List[str] | None) -> None:
    """Fail (exit 2) before Ray starts when a local path is missing, naming what it was given
    as: "input X does not exist" for `inputs`, "--model X does not exist" for model=X."""
    named = [("input", uri) for uri in inputs]
    for key, value in options.items():
        named += [(f"--{key.replace('_', '-')}", v) for v in ([value] if isinstance(value, str) else value or [])]
    for what, uri in named:
        if "://" not in uri and not any(c in uri for c in "*?[") and not os.path.exists(uri):
            fail(f"{what} {uri} does not exist")

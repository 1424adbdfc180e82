"""The `raydist` command line. Each command parses options, builds configs and calls one library
function; paths and options are checked before Ray starts.

    raydist demo                       # built-in corpus -> train -> embed, on a local Ray
    raydist train CORPUS --out runs/a  # train the VAE with Ray Train
    raydist embed INPUT... --model runs/a/model.pt --out emb/

`commands` holds the product's commands, `evaluate` the ones that judge outputs, `cluster` job
submission; `options` the option types and error handling they share. The app is assembled here,
command by command.
"""

from __future__ import annotations

import sys

import typer

from raydist.cli import cluster, commands, evaluate, search
from raydist.cli import serve as serving
from raydist.cli.options import leave

app = typer.Typer(
    help=__doc__.split("\n\n")[0], no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False
)
_console = False  # set by main(): the installed `raydist` command (not jobs/, not tests' in-process runs)


@app.callback()
def _options(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show Ray's logs and warnings here."),
) -> None:
    """raydist: train an audio VAE on Ray and embed, compress and decode corpora with it."""
    if _console and ctx.invoked_subcommand:
        import os

        from raydist.console import quiet

        log_dir = os.environ.get("RAYDIST_LOG_DIR") or os.path.expanduser("~/.cache/raydist/logs")
        quiet(log_dir, ctx.invoked_subcommand, verbose)


def main() -> None:
    """The `raydist` command. An unexpected exception (a bug) is one line on the console; its
    traceback goes to the log."""
    global _console
    _console = True
    try:
        app(standalone_mode=True)
    except SystemExit as e:
        _exiting()
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
        leave(e.code if isinstance(e.code, int) else int(e.code is not None))
    except Exception as e:  # noqa: BLE001 - anything user_errors did not know
        import traceback

        from raydist.console import log_path, say

        traceback.print_exc()  # to the log (the console shows raydist's lines only)
        where = f"; the traceback is in {log_path()}" if log_path() else ""
        say(f"error: internal error, {type(e).__name__}: {e}{where}. Please report it.")
        _exiting()
        raise SystemExit(1) from None


def _exiting() -> None:
    """The command is done (its work committed, its result printed): a signal from here on would
    only cut Ray's shutdown short (and leave its processes), so it is ignored; SIGKILL still works."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


for fn in (commands.train, commands.embed, commands.compress, commands.decompress, commands.generate):
    app.command()(fn)
app.command("evaluate-codec")(evaluate.evaluate_codec)
app.command()(evaluate.probe)
app.command("segment-eval")(evaluate.segment_eval)
app.command()(search.index)
app.command()(search.search)
app.command()(search.dedupe)
app.command()(serving.serve)
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(cluster.submit)
jobs_app = typer.Typer(help="Inspect and stop submitted jobs.", no_args_is_help=True)
jobs_app.command("status")(cluster.jobs_status)
jobs_app.command("logs")(cluster.jobs_logs)
jobs_app.command("stop")(cluster.jobs_stop)
app.add_typer(jobs_app, name="jobs")
app.command()(commands.runs)
app.command()(commands.compact)
app.command()(commands.demo)

__all__ = ["app", "main"]

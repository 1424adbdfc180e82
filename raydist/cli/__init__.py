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

import typer

from raydist.cli import cluster, commands, evaluate

app = typer.Typer(help=__doc__.split("\n\n")[0], no_args_is_help=True, add_completion=False)
for fn in (commands.train, commands.embed, commands.compress, commands.decompress, commands.generate):
    app.command()(fn)
app.command("evaluate-codec")(evaluate.evaluate_codec)
app.command()(evaluate.probe)
app.command("segment-eval")(evaluate.segment_eval)
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(cluster.submit)
jobs_app = typer.Typer(help="Inspect and stop submitted jobs.", no_args_is_help=True)
jobs_app.command("status")(cluster.jobs_status)
jobs_app.command("logs")(cluster.jobs_logs)
jobs_app.command("stop")(cluster.jobs_stop)
app.add_typer(jobs_app, name="jobs")
app.command()(commands.runs)
app.command()(commands.demo)

__all__ = ["app"]

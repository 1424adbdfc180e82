"""Commands that judge outputs, no Ray: evaluate-codec, probe, segment-eval."""

from __future__ import annotations

from typing import Optional

import typer

from raydist.cli.options import check_local_inputs, user_errors


def evaluate_codec(
    originals: str = typer.Argument(..., help="Folder, glob or manifest of the original audio."),
    decoded: str = typer.Argument(..., help="Folder of decoded audio (files named by clip id)."),
    compressed: Optional[str] = typer.Option(None, help="The compressed set, to add its bitrate to the report."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Write the report as JSON here."),
) -> None:
    """Per-clip and mean log-mel L1, multi-resolution STFT distance and SI-SDR of decoded audio."""
    import json

    from raydist.eval.quality import evaluate_pairs, format_table
    from raydist.pipeline.compress import codec_report

    check_local_inputs([originals, decoded])
    with user_errors():
        report = evaluate_pairs([originals], [decoded])
        if compressed:
            report["bitrate"] = codec_report(compressed)
    typer.echo(format_table(report))
    if json_out:
        with open(json_out, "w") as f:
            json.dump(report, f, indent=2)
        typer.echo(f"raydist: report written to {json_out}")


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
    from raydist.cli.options import fail
    from raydist.eval.probe import run_probe

    if folds < 2:
        fail(f"--folds must be >= 2, got {folds}")
    check_local_inputs([embeddings], labels=labels)
    with user_errors():
        report = run_probe(embeddings, out, labels, folds, baseline, mlp)
    for name in ("vae", "logmel", "mfcc", "vae_mlp", "logmel_mlp", "mfcc_mlp"):
        if name in report:
            typer.echo(f"{name:7s} accuracy {report[name]['accuracy']:.3f}  macro-F1 {report[name]['macro_f1']:.3f}")
    typer.echo(
        f"raydist: {report['clips']} clips, {folds} folds; wrote {out}/probe.json and {', '.join(report['pictures'])}"
    )


def segment_eval(
    embeddings: str = typer.Argument(..., help="Output directory of raydist embed."),
    truth: str = typer.Option(..., "--truth", help="CSV of reference segments: id, start_s, end_s."),
    out: str = typer.Option(..., "--out", help="Directory for segments.json and a novelty picture."),
    baseline: bool = typer.Option(True, help="Also score novelty on raw log-mel."),
) -> None:
    """Boundary P/R/F at 0.5 s and 0.25 s of events and source segments, with the run's own
    settings, and the mean signed offset of the boundaries matched within 0.5 s (negative: they
    come before the truth)."""
    from raydist.eval.segments import run_segment_eval

    check_local_inputs([embeddings], truth=truth)
    with user_errors():
        report = run_segment_eval(embeddings, truth, out, baseline)
    typer.echo(f"{'truth':15s} {report['reference_boundaries']} boundaries")
    for name in ("events", "segments", "logmel_novelty"):
        if name in report:
            r = report[name]
            offset = "" if r["offset_s"] is None else f"  mean offset {r['offset_s'] * 1000:+.0f} ms"
            typer.echo(
                f"{name:15s} {r['boundaries']} boundaries  F@0.5s {r['0.5s']['f_measure']:.3f}  "
                f"F@0.25s {r['0.25s']['f_measure']:.3f}{offset}"
            )
    typer.echo(f"raydist: {report['clips']} clips; wrote {out}/segments.json and {', '.join(report['pictures'])}")

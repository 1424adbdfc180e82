"""Source segmentation on concatenations of real sources: events and segments against the joins.

    apt-get install espeak-ng fluidsynth fluid-soundfont-gm
    python -m bench segments --seeds 0 1 2

Builds two sets of files (`bench/corpora/joined.py`): each file is 3-6 pieces joined with no gap, a piece
being a word said 2-4 times by one espeak-ng voice with pauses, or a phrase with rests played by
one General MIDI program; 40% of joins are between similar sources (two voices of one gender, two
programs of one family). The tuning set uses TUNE_VOICES and TUNE_PROGRAMS; the held-out set
uses other voices and programs (HELD_*), never used for tuning or training.

Per seed: trains a VAE on the tuning set's pieces with the shipped trainer's step and settings
(`raydist.train.local`, TrainConfig defaults: 20 epochs), embeds both sets with `raydist embed`
(Ray Data, the shipped SegmentConfig), and scores with `raydist segment-eval` against the joins:
F at 0.5 s and 0.25 s and boundary counts for segments (sources: latents + cepstra) and events
(onsets/offsets), beside log-mel novelty (the same event-level algorithm on raw log-mel) and the
source algorithm on other inputs (`ablations`: raw log-mel, the cepstra alone, the latents alone
with the settings shipped before the cepstra). Prints means over seeds with their range and
writes JSON.
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile

import numpy as np

from bench.corpora.joined import HELD_PROGRAMS, HELD_VOICES, TUNE_PROGRAMS, TUNE_VOICES, build
from bench.report import table
from raydist.audio import decode
from raydist.config import SegmentConfig, TrainConfig
from raydist.embedding.encode import encode_many
from raydist.embedding.features import active_frames
from raydist.embedding.segmentation import boundary_s, source_boundaries
from raydist.eval.boundaries import boundary_scores
from raydist.eval.segments import WINDOWS, pooled_logmel, reference_boundaries, run_segment_eval
from raydist.io.store import read_table
from raydist.model.checkpoint import load_model
from raydist.train.local import train_local


def _cuts(x: np.ndarray, energy: np.ndarray, rate: float, cfg: SegmentConfig) -> list[tuple[int, float]]:
    """The source algorithm with `cfg`'s settings on any (L, D) sequence."""
    window = cfg.source_frames(rate)
    return source_boundaries(x, active_frames(energy), window, cfg.source_threshold, cfg.merge_distance)


def ablations(emb: str, truth: str, model_uri: str) -> dict:
    """The source algorithm on other inputs than the shipped latents + cepstra, scored like
    segment-eval on the same files: raw log-mel (standardised bands), the cepstra alone, and the
    latents alone with the settings shipped before the cepstra (merge 1.65)."""
    m = load_model(model_uri)
    d, rate, cfg = m.vae.cfg.downsample, m.latent_rate, SegmentConfig()
    clips = {r["id"]: r for r in read_table(emb, "clips", columns=["id", "uri", "duration_s"]).to_pylist()}
    reference = reference_boundaries(truth, {i: c["duration_s"] for i, c in clips.items()})
    latents_only = SegmentConfig(merge_distance=1.65, cepstral_weight=0.0)
    variants = {
        "logmel_sources": lambda lat, mel: _cuts(mel, lat.energy[: len(mel)], rate, cfg),
        "cepstra_sources": lambda lat, mel: _cuts(lat.cepstra, lat.energy, rate, cfg),
        "latents_sources": lambda lat, mel: _cuts(lat.mean, lat.energy, rate, latents_only),
    }
    scores = {k: collections.defaultdict(list) for k in variants}
    found = dict.fromkeys(variants, 0)
    for cid, ref in reference.items():
        uri = clips[cid]["uri"]
        lat = encode_many(m, [decode(uri, m.features.sample_rate)[0]])[0]
        mel = pooled_logmel(uri, d, m.features)[0]
        n = min(len(mel), len(lat.mean))
        for name, cut in variants.items():
            est = [boundary_s(j, d, m.features) for j, _ in cut(lat, mel[:n])]
            found[name] += len(est)
            for w in WINDOWS:
                scores[name][w].append(boundary_scores(ref, est, w)["f_measure"])
    return {
        name: {
            **{f"{w}s": {"f_measure": float(np.mean(v))} for w, v in scores[name].items()},
            "boundaries": found[name],
        }
        for name in variants
    }


def one_seed(seed: int, sets: dict, root: str) -> dict:
    from raydist.pipeline.embed import embed

    model = train_local([sets["tune"][2]], os.path.join(root, f"ckpt{seed}"), TrainConfig(seed=seed))
    out = {}
    for name, (manifest, truth, _) in sets.items():
        emb = os.path.join(root, f"emb-{name}-{seed}")
        embed([manifest], emb, model, progress=False)
        report = run_segment_eval(emb, truth, os.path.join(root, f"eval-{name}-{seed}"))
        report.update(ablations(emb, truth, model))
        out[name] = report
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench segments", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--files", type=int, default=60, help="files per set")
    args = ap.parse_args(argv)
    from raydist.cluster.session import init_ray

    root = tempfile.mkdtemp(prefix="segbench")
    sets = {
        "tune": build(os.path.join(root, "tune"), args.files, TUNE_VOICES, TUNE_PROGRAMS, seed=0),
        "held-out": build(os.path.join(root, "held"), args.files, HELD_VOICES, HELD_PROGRAMS, seed=1),
    }
    init_ray()
    runs = [one_seed(s, sets, root) for s in args.seeds]
    summary: dict = {"seeds": args.seeds, "files": args.files, "runs": runs}
    for name in sets:
        true = runs[0][name]["reference_boundaries"]
        for method in METHODS:
            row = {}
            for w in ("0.5s", "0.25s"):
                v = [r[name][method][w]["f_measure"] for r in runs]
                row[w] = (float(np.mean(v)), float(min(v)), float(max(v)))
            ratio = [r[name][method]["boundaries"] / true for r in runs]
            row["ratio"] = (float(np.mean(ratio)), float(min(ratio)), float(max(ratio)))
            summary[f"{name}/{method}"] = row
    print(render(summary))
    return summary


METHODS = {
    "segments": "source segments (latents + cepstra; what `raydist embed` writes)",
    "latents_sources": "the source algorithm on the latents alone (settings before the cepstra)",
    "cepstra_sources": "the source algorithm on the cepstra alone",
    "logmel_sources": "the source algorithm on raw log-mel",
    "events": "events (onsets and offsets; what `raydist embed` writes)",
    "logmel_novelty": "log-mel novelty (the event algorithm on raw log-mel)",
}


def render(result: dict) -> str:
    out = []
    for name in ("held-out", "tune"):
        true = result["runs"][0][name]["reference_boundaries"]
        rows = [
            [label]
            + [
                f"{m:.3f} ({lo:.2f}–{hi:.2f})"
                for m, lo, hi in (result[f"{name}/{k}"]["0.5s"], result[f"{name}/{k}"]["0.25s"])
            ]
            + [f"{result[f'{name}/{k}']['ratio'][0]:.2f}"]
            for k, label in METHODS.items()
        ]
        out.append(f"**{name} set** ({result['files']} files, {true} true boundaries; mean over seeds (range)):")
        out.append(table(["method", "F@0.5 s", "F@0.25 s", "boundaries found / true"], rows))
    return f"Seeds {', '.join(map(str, result['seeds']))}.\n\n" + "\n\n".join(out)


def headline(result: dict) -> list[tuple[str, str]]:
    seg, base = result["held-out/segments"], result["held-out/logmel_novelty"]
    return [
        (
            "held-out joins: source segments F@0.5 s / F@0.25 s (log-mel novelty)",
            f"{seg['0.5s'][0]:.3f} / {seg['0.25s'][0]:.3f} ({base['0.5s'][0]:.3f} / {base['0.25s'][0]:.3f})",
        )
    ]

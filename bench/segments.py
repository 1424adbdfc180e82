"""Source segmentation on two corpora built differently: settings tuned on one, scored on the other.

    apt-get install espeak-ng fluidsynth fluid-soundfont-gm
    python -m bench segments --seeds 0 1 2

Corpora (nothing downloaded):
- `joined` (`bench/corpora/joined.py`): 3-6 pieces per file joined with no gap, each a word said
  2-4 times by an espeak-ng voice or a phrase of a General MIDI program; a tuning split
  (TUNE_VOICES, TUNE_PROGRAMS) and a held split (HELD_*);
- `varied` (`bench/corpora/varied.py`): other voices, programs and words; gaps of 0-1.5 s or
  crossfades of 0-200 ms, level jumps up to 12 dB, noise at 10-30 dB SNR on half the files, runs
  of one source saying or playing different things (joins that are no boundary); truth at the
  new source's onset.

Per seed: a VAE is trained with the shipped trainer's step and settings (`raydist.train.local`,
TrainConfig defaults) on each corpus as a user would (joined: the tuning split's pieces; varied:
its files), and each scored set is embedded with `raydist embed` (Ray Data, the shipped
SegmentConfig) and scored with `raydist segment-eval`: the shipped figures. Then, on the same
latents (`encode_many`, the pipeline's encoder) and through the pipeline's own `clip_features`,
a grid of SegmentConfig settings is tuned on one corpus (best mean of F@0.5 s and F@0.25 s over
seeds) and scored on the other, in both directions: joined tuning split -> varied, and varied ->
joined held split. Beside it, in each direction: the settings shipped before (boundary in the
middle of a pause, no noise floor; the features are today's) and the anchor, MFCC mean-difference novelty over active
frames only (±0.5 s window, at the mel frame rate, boundaries at the first active frame after a
peak; its threshold tuned on the same corpus). Recall per join type (voice→voice,
program→program, voice↔program) and, for joins inside one source, the share that got a boundary
within 0.5 s (false splits). Means over seeds with their range.

Two-part clips (`varied.two_part_clips`, random voices, words and programs of both corpora): two
voices with a 1 s pause, one voice saying two words, two programs crossfaded over 200 ms, one
source's material twice 12 dB apart (and, as its control, twice at one level), each scored with
every seed's two models and the shipped settings: the cases tests/test_sources.py checks on
fixed material, here as the share that comes out right.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import os
import tempfile

import numpy as np
import pyarrow.csv as pacsv
import torch

from bench.corpora import joined, varied
from bench.report import table
from raydist.audio import LogMel, decode
from raydist.config import FeatureConfig, SegmentConfig, TrainConfig
from raydist.embedding.encode import encode_many
from raydist.embedding.features import active_frames, cepstral_basis, clip_features
from raydist.embedding.segmentation import novelty, pick_boundaries
from raydist.eval.segments import boundary_report, reference_boundaries, run_segment_eval
from raydist.model.checkpoint import load_model
from raydist.train.local import train_local

GRID = {
    "source_threshold": (1.0, 2.0),
    "source_novelty_s": (0.5, 0.75),
    "merge_distance": (2.6, 2.8, 3.0, 3.2, 3.4, 3.6, 3.9, 4.2, 4.5),
    "cepstral_weight": (2.0, 3.0),
    "n_cepstra": (6, 8, 12),
    "noise_margin_db": (3.0,),
}
BEFORE = SegmentConfig(  # the settings raydist shipped before this benchmark's second corpus
    source_novelty_s=0.75,
    source_threshold=1.0,
    merge_distance=1.8,
    cepstral_weight=1.0,
    n_cepstra=12,
    noise_margin_db=0.0,
    placement="middle",
)
ANCHOR_THRESHOLDS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
KINDS = ("voice→voice", "program→program", "voice↔program", "same source")


def joins_of(truth: str, joins: str | None) -> list[dict]:
    """(id, onset_s, kind) of every join: from joins.csv where the corpus has one, else between
    consecutive truth rows of a file (joined: no gaps, no same-source joins)."""
    if joins:
        return pacsv.read_csv(joins).to_pylist()
    rows, out = pacsv.read_csv(truth).to_pylist(), []
    for a, b in zip(rows, rows[1:]):
        if a["id"] == b["id"]:
            out.append({"id": b["id"], "onset_s": b["start_s"], "kind": varied.kind(a["source"], b["source"])})
    return out


def latents(model: str, manifest: str) -> dict:
    """Per clip of a manifest: (Latents, duration_s), encoded as the pipeline encodes."""
    m, root = load_model(model), os.path.dirname(manifest)
    out = {}
    for r in pacsv.read_csv(manifest).to_pylist():
        wave = decode(os.path.join(root, r["uri"]), m.features.sample_rate)[0]
        out[r["id"]] = (encode_many(m, [wave])[0], len(wave) / m.features.sample_rate)
    return out


def segment_times(clips: dict, cfg: SegmentConfig, features: FeatureConfig, downsample: int) -> dict:
    """Per clip, the interior boundaries of its segments, by the pipeline's clip_features."""
    out = {}
    for cid, (lat, dur) in clips.items():
        f = clip_features(
            *(lat.mean, lat.energy, dur, cfg, downsample, features, lat.cepstra, lat.early),
            mel_energy=lat.mel_energy,
            bands=lat.bands,
        )
        out[cid] = [float(t) for t in f.segments.start[1:]]
    return out


def two_part_rates(clips: list, model: str) -> dict:
    """Share of the two-part clips (`varied.two_part_clips`) each case gets right with a model and
    the shipped SegmentConfig, through the pipeline's encoder and clip_features."""
    m = load_model(model)
    got = collections.defaultdict(list)
    for case, wave, expect in clips:
        lat = encode_many(m, [wave])[0]
        clip = {"c": (lat, len(wave) / m.features.sample_rate)}
        found = segment_times(clip, SegmentConfig(), m.features, m.vae.cfg.downsample)["c"]
        got[case].append(varied.right(expect, found))
    return {case: float(np.mean(v)) for case, v in got.items()}


def mfcc_anchor(manifest: str, features: FeatureConfig) -> dict:
    """Per clip: (MFCC c1-c12 at the mel frame rate, standardised over active frames; the
    active frames' indices): the anchor's input, independent of any model."""
    logmel, root, out = LogMel(features), os.path.dirname(manifest), {}
    for r in pacsv.read_csv(manifest).to_pylist():
        with torch.inference_mode():
            mel = logmel(torch.from_numpy(decode(os.path.join(root, r["uri"]), features.sample_rate)[0])).numpy().T
        frames = np.flatnonzero(active_frames(mel.mean(1)))
        z = mel[frames] @ cepstral_basis(mel.shape[1])
        out[r["id"]] = ((z - z.mean(0)) / (z.std(0) + 1e-6), frames)
    return out


def anchor_times(anchor: dict, threshold: float, rate: float) -> dict:
    half = round(0.5 * rate)
    out = {}
    for cid, (z, frames) in anchor.items():
        picks = pick_boundaries(novelty(z, half), half, threshold) if len(z) > 2 * half else []
        out[cid] = [float(frames[j] / rate) for j in picks]
    return out


def score(reference: dict, estimated: dict, joins: list[dict]) -> dict:
    """F at both windows, boundaries found / true, mean signed offset (ms) of matches within
    0.5 s, and per join type the share of joins with a boundary within 0.5 s."""
    report = boundary_report(reference, {c: estimated[c] for c in reference})  # segment-eval's own scores
    out = {f"{w}s": report[f"{w}s"]["f_measure"] for w in (0.5, 0.25)}
    out["ratio"] = report["boundaries"] / sum(len(v) for v in reference.values())
    out["offset_ms"] = 1000 * (report["offset_s"] or 0.0)
    hits = collections.defaultdict(list)
    for j in joins:
        est = np.asarray(estimated.get(j["id"], []))
        hits[j["kind"]].append(bool(len(est) and np.abs(est - j["onset_s"]).min() <= 0.5))
    out["kinds"] = {k: (float(np.mean(v)), len(v)) for k, v in hits.items()}
    return out


def mean_over(runs: list[dict]) -> dict:
    """Mean, min and max over seeds of each score; per-kind shares averaged."""
    out = {
        k: (float(np.mean(v)), float(min(v)), float(max(v)))
        for k in ("0.5s", "0.25s", "ratio", "offset_ms")
        for v in [[r[k] for r in runs]]
    }
    out["kinds"] = {
        k: (float(np.mean([r["kinds"][k][0] for r in runs])), runs[0]["kinds"][k][1]) for k in runs[0]["kinds"]
    }
    return out


def objective(runs: list[dict]) -> float:
    return float(np.mean([(r["0.5s"] + r["0.25s"]) / 2 for r in runs]))


def cross(sets: dict, seeds: list[int]) -> dict:
    """Tune on one corpus, score on the other, both directions; with the settings of 0.3 and the
    MFCC-novelty anchor (its threshold tuned the same way)."""
    configs = [SegmentConfig(**dict(zip(GRID, v))) for v in itertools.product(*GRID.values())]
    out = {}
    for tune, test in (("joined-tune", "varied"), ("varied", "joined-held")):

        def runs(name, cfg):
            s = sets[name]
            return [
                score(s["ref"], segment_times(s["clips"][k], cfg, s["features"], s["d"]), s["joins"]) for k in seeds
            ]

        best = max(configs, key=lambda c: objective(runs(tune, c)))
        thr = max(
            ANCHOR_THRESHOLDS,
            key=lambda t: objective(
                [score(sets[tune]["ref"], anchor_times(sets[tune]["anchor"], t, 100.0), sets[tune]["joins"])]
            ),
        )
        anchor = score(sets[test]["ref"], anchor_times(sets[test]["anchor"], thr, 100.0), sets[test]["joins"])
        out[f"{tune}->{test}"] = {
            "chosen": {k: getattr(best, k) for k in GRID},
            "anchor_threshold": thr,
            "tuned": mean_over(runs(test, best)),
            "tuned_on_tuning_set": mean_over(runs(tune, best)),
            "shipped": mean_over(runs(test, SegmentConfig())),
            "before": mean_over(runs(test, BEFORE)),
            "anchor": mean_over([anchor]),
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench segments", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--files", type=int, default=60, help="files per set")
    ap.add_argument("--pairs", type=int, default=12, help="random two-part clips of each case")
    args = ap.parse_args(argv)
    from raydist.cluster.session import init_ray
    from raydist.pipeline.embed import embed

    root = tempfile.mkdtemp(prefix="segbench")
    built = {
        "joined-tune": joined.build(f"{root}/tune", args.files, joined.TUNE_VOICES, joined.TUNE_PROGRAMS, seed=0),
        "joined-held": joined.build(f"{root}/held", args.files, joined.HELD_VOICES, joined.HELD_PROGRAMS, seed=1),
        "varied": varied.build(f"{root}/varied", args.files, seed=2),
    }
    os.makedirs(f"{root}/pairs")
    pairs = varied.two_part_clips(f"{root}/pairs", args.pairs, seed=3)
    init_ray()
    features = FeatureConfig()
    sets = {}
    for name, (manifest, truth, extra) in built.items():
        sets[name] = {"manifest": manifest, "truth": truth, "clips": {}, "features": features, "d": 8}
        sets[name]["joins"] = joins_of(truth, extra if name == "varied" else None)
        sets[name]["anchor"] = mfcc_anchor(manifest, features)
    shipped: dict = collections.defaultdict(list)
    rates: dict = collections.defaultdict(list)
    for seed in args.seeds:
        models = {
            "joined": train_local([built["joined-tune"][2]], f"{root}/ckpt-joined-{seed}", TrainConfig(seed=seed)),
            "varied": train_local([built["varied"][0]], f"{root}/ckpt-varied-{seed}", TrainConfig(seed=seed)),
        }
        for model in models.values():
            for case, share in two_part_rates(pairs, model).items():
                rates[case].append(share)
        for name, s in sets.items():
            model = models[name.split("-")[0]]
            s["clips"][seed] = latents(model, s["manifest"])
            s["d"] = load_model(model).vae.cfg.downsample
            if name != "joined-tune":
                emb = f"{root}/emb-{name}-{seed}"
                embed([s["manifest"]], emb, model, progress=False)
                shipped[name].append(run_segment_eval(emb, s["truth"], f"{root}/eval-{name}-{seed}"))
    for s in sets.values():
        s["ref"] = reference_boundaries(s["truth"], {c: d for c, (_, d) in s["clips"][args.seeds[0]].items()})
    summary: dict = {"seeds": args.seeds, "files": args.files, "grid": {k: list(v) for k, v in GRID.items()}}
    summary["truth"] = {n: sum(len(v) for v in s["ref"].values()) for n, s in sets.items()}
    summary["joins"] = {n: dict(collections.Counter(j["kind"] for j in s["joins"])) for n, s in sets.items()}
    summary["shipped"] = {
        name: {
            m: {k: [r[m][k] for r in reports] for k in ("0.5s", "0.25s", "boundaries", "offset_s")}
            for m in ("segments", "events", "logmel_novelty")
        }
        for name, reports in shipped.items()
    }
    summary["segment_config"] = SegmentConfig().to_dict()
    summary["cross"] = cross(sets, args.seeds)
    summary["two_part"] = {"clips_per_case": args.pairs, "right": dict(rates)}
    print(render(summary))
    return summary


ROWS = (
    ("tuned", "segments, settings tuned on the other corpus"),
    ("shipped", "segments, shipped settings (SegmentConfig defaults)"),
    ("before", "segments, settings shipped before (pause middle, no noise floor)"),
    ("anchor", "MFCC novelty anchor, threshold tuned on the other corpus"),
)


def _f(v: tuple, digits: int = 3) -> str:
    return f"{v[0]:.{digits}f} ({v[1]:.2f}–{v[2]:.2f})"


def render(result: dict) -> str:
    out = [f"Seeds {', '.join(map(str, result['seeds']))}; {result['files']} files per set."]
    for direction, r in result["cross"].items():
        tune, test = direction.split("->")
        chosen = ", ".join(f"{k} {v}" for k, v in r["chosen"].items())
        out.append(
            f"**Tuned on {tune}, scored on {test}** ({result['truth'][test]} true boundaries; mean over seeds "
            f"(range)). Chosen: {chosen}; anchor threshold {r['anchor_threshold']}."
        )
        rows = [
            [label, _f(r[k]["0.5s"]), _f(r[k]["0.25s"]), f"{r[k]['ratio'][0]:.2f}", f"{r[k]['offset_ms'][0]:+.0f}"]
            + [f"{r[k]['kinds'][kind][0]:.2f}" if kind in r[k]["kinds"] else "–" for kind in KINDS]
            for k, label in ROWS
        ]
        heads = ["method", "F@0.5 s", "F@0.25 s", "found / true", "offset ms"] + [f"{k} ≤0.5 s" for k in KINDS]
        out.append(table(heads, rows))
    counts = "; ".join(f"{n}: {', '.join(f'{k} {v}' for k, v in c.items())}" for n, c in result["joins"].items())
    out.append(f"Joins: {counts}. For `same source`, the share is of false splits (lower is better).")
    rows = []
    for name, methods in result["shipped"].items():
        for m, v in methods.items():
            offset = [x for x in v["offset_s"] if x is not None]
            rows.append(
                [
                    name,
                    m,
                    f"{_mean_f(v['0.5s']):.3f}",
                    f"{_mean_f(v['0.25s']):.3f}",
                    f"{np.mean(v['boundaries']) / result['truth'][name]:.2f}",
                    f"{1000 * np.mean(offset):+.0f}" if offset else "–",
                ]
            )
    tp = result["two_part"]
    out.append(
        f"Two-part clips ({tp['clips_per_case']} of each case, random voices, words and programs of both corpora; "
        "shipped settings; each seed's two models): share right, mean (range). Right: two voices with a 1 s pause, "
        "one boundary within 50 ms of the second voice's onset; one voice saying two words with a 0.6 s pause, none; "
        "two programs crossfaded over 200 ms, one boundary inside the fade; one source's material twice 12 dB apart, "
        "none (and twice at one level, the control, none)."
    )
    out.append(table(["case", "right"], [[case, _f(_spread(v), 2)] for case, v in tp["right"].items()]))
    out.append("Through `raydist embed` + `raydist segment-eval` (shipped settings):")
    out.append(table(["set", "method", "F@0.5 s", "F@0.25 s", "found / true", "offset ms"], rows))
    return "\n\n".join(out)


def _spread(v: list[float]) -> tuple[float, float, float]:
    return float(np.mean(v)), float(min(v)), float(max(v))


def _mean_f(v: list[dict]) -> float:
    return float(np.mean([x["f_measure"] for x in v]))


def headline(result: dict) -> list[tuple[str, str]]:
    a = result["cross"]["joined-tune->varied"]
    return [
        (
            "varied corpus, settings tuned on joined: segments F@0.5 s / F@0.25 s (MFCC anchor)",
            f"{a['tuned']['0.5s'][0]:.3f} / {a['tuned']['0.25s'][0]:.3f} "
            f"({a['anchor']['0.5s'][0]:.3f} / {a['anchor']['0.25s'][0]:.3f})",
        )
    ]

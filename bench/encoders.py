"""Other teams' encoders through raydist's pipeline: on the held-out word, speaker and
instrument-family sets, the clip embeddings of raydist's VAE, of `hearbaseline.torchcrepe`
(CREPE, pretrained) and of `hearbaseline.naive` (log-mel + a fixed random projection), beside
log-mel and MFCC statistics, with the probe and grouped folds of `bench features`; and each
encoder's audio-seconds per second through `raydist embed`.

    apt-get install espeak-ng fluidsynth fluid-soundfont-gm
    pip install --no-deps hearbaseline==2021.1.1 && pip install torchcrepe librosa
    python -m bench encoders --seeds 0 1 2 --epochs 90

Every encoder runs as a user would run it: `raydist embed MANIFEST --encoder MODULE --out OUT`
(the VAE: `raydist train` with every default but --epochs/--seed, then `raydist embed --model`),
timed as a whole command and, for the rate, by the run's own audio-s/s over its wall time. The
pretrained and fixed encoders have no training seed: their probe is deterministic (grouped folds);
the VAE is trained once per seed and reported as mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from bench.features import LABELS, TASKS, probes, run, setup
from bench.report import mean_std, table
from raydist.io.store import RunStore, read_table

NAIVE_SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hear_naive.py")
HEAR = {"torchcrepe": "hearbaseline.torchcrepe", "naive": "hearbaseline.naive"}
ENCODER_ARG = {"torchcrepe": "hearbaseline.torchcrepe", "naive": NAIVE_SHIM}  # naive: see bench/hear_naive.py


def _embedded(emb: str, rows: list[dict]) -> tuple[np.ndarray, dict]:
    clips = read_table(emb, "clips", columns=["id", "embedding", "duration_s"]).to_pydict()
    by_id = dict(zip(clips["id"], clips["embedding"]))
    [record] = [r for r in RunStore(emb).records() if r.get("state") == "complete"][-1:]
    audio = float(sum(clips["duration_s"]))
    x = np.array([by_id[r["id"]] for r in rows], np.float32)
    return x, {"audio_s": audio, "dims": int(x.shape[1]), "run_wall_s": record.get("wall_s")}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench encoders", description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("tune", "held"), default="held")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="VAE training seeds")
    ap.add_argument("--epochs", type=int, default=90)
    ap.add_argument("--encoders", nargs="+", default=list(HEAR), choices=list(HEAR))
    ap.add_argument("--root", help="work folder (default: a new temporary one)")
    args = ap.parse_args(argv)
    root, manifest, rows, baselines = setup(args.root, args.split, "enc")
    raydist = os.path.join(os.path.dirname(sys.executable), "raydist")
    report: dict = {"split": args.split, "clips": len(rows), "epochs": args.epochs, "encoders": {}, **baselines}
    for name in args.encoders:
        emb = os.path.join(root, f"emb-{name}")
        wall = run(
            [raydist, "embed", manifest, "--encoder", ENCODER_ARG[name], "--out", emb],
            os.path.join(root, f"{name}.log"),
        )
        x, info = _embedded(emb, rows)
        report["encoders"][name] = {**probes(x, rows), **info, "command_s": wall}
        print(name, json.dumps(report["encoders"][name]), flush=True)
    vae = []
    for seed in args.seeds:
        ckpt, emb = os.path.join(root, f"ckpt{seed}"), os.path.join(root, f"emb{seed}")
        train = [raydist, "train", manifest, "--out", ckpt, "--epochs", str(args.epochs), "--seed", str(seed)]
        train_s = run(train, os.path.join(root, f"train{seed}.log"))
        wall = run([raydist, "embed", manifest, "--model", ckpt, "--out", emb], os.path.join(root, f"embed{seed}.log"))
        x, info = _embedded(emb, rows)
        vae.append({"seed": seed, "train_s": train_s, **probes(x, rows), **info, "command_s": wall})
        print("vae", json.dumps(vae[-1]), flush=True)
    report["vae"] = vae
    print(render(report))
    return report


def _rate(e: dict) -> str:
    run_rate = e["audio_s"] / e["run_wall_s"] if e.get("run_wall_s") else float("nan")
    return f"{run_rate:.0f} ({e['audio_s'] / e['command_s']:.0f})"


def render(result: dict) -> str:
    vae, enc = result["vae"], result["encoders"]
    head = ["embedding", "dims", *[LABELS[t] for t in TASKS], "audio-s/s: run (whole command)"]
    rows = []
    if vae:
        rows.append(
            [f"raydist VAE ({len(vae)} seeds, {result['epochs']} epochs)", vae[0]["dims"]]
            + [f"**{mean_std([s[t] for s in vae])}**" for t in TASKS]
            + [f"{np.mean([s['audio_s'] / s['run_wall_s'] for s in vae]):.0f} "
               f"({np.mean([s['audio_s'] / s['command_s'] for s in vae]):.0f})"]
        )  # fmt: skip
    for name, e in enc.items():
        rows.append([f"`{HEAR[name]}`", e["dims"], *[f"{e[t]:.3f}" for t in TASKS], _rate(e)])
    for name, label in (("logmel", "log-mel mean, std"), ("mfcc", "MFCC mean, std")):
        rows.append([label, "", *[f"{result[name][t]:.3f}" for t in TASKS], "(no model)"])
    intro = (
        f"{result['split']} split, {result['clips']} clips; logistic probe accuracy, 5 grouped folds (as "
        "`bench features`); every encoder run by `raydist embed` on the same manifest and cores. The rate "
        "is the run's audio-seconds over its wall time (in brackets: over the whole command, with Ray's "
        "start and the model load)."
    )
    return f"{intro}\n\n{table(head, rows)}"


def headline(result: dict) -> list[tuple[str, str]]:
    out = []
    for name, e in result["encoders"].items():
        out.append(
            (f"`{HEAR[name]}` through `raydist embed --encoder`: word / speaker / family",
             " / ".join(f"{e[t]:.3f}" for t in TASKS) + f", {_rate(e)} audio-s/s")
        )  # fmt: skip
    return out

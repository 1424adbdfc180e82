"""raydist's codec (learned vocoder, and the Griffin-Lim fallback) beside Opus, on held-out clips.

    apt-get install espeak-ng fluidsynth fluid-soundfont-gm ffmpeg && pip install pesq
    python -m bench codec --seeds 2 --vocoder-epochs 40                  # CPU: small preset
    python -m bench codec --preset base --latent-dim 44 --vae-epochs 172 --device cuda
    python -m bench codec --model runs/gpu/model.pt                     # score checkpoints trained elsewhere

Corpus (`bench/corpora/labelled.py`): words spoken by espeak-ng voices and phrases played by General MIDI
programs through fluidsynth, 16 kHz. The models train on the TUNE split plus `--speech` phrases per
voice from 20 more espeak-ng voices (`build_speech`; 0 = the TUNE split alone), and
every figure is scored on the HELD split (other voices, other programs, none of them trained on):
scoring a learned codec on its training clips flatters it, and Opus has no such advantage.

Per seed: a VAE trained with the shipped step and settings (`raydist.train.local.train_local`,
TrainConfig defaults but `--vae-epochs`), then its vocoder (`train_vocoder_local`, `raydist train
--stage vocoder`'s step, `--vocoder-epochs`). The held clips go through `raydist compress` and
`decompress` on a local Ray, once with the vocoder checkpoint and once with the VAE alone
(Griffin-Lim; the same codes). Opus: ffmpeg's libopus at 6 and 12 kbps on the same clips, decoded
back to 16 kHz. kbps from the bytes on disk on both sides. Measures: PESQ wide-band (speech),
log-mel L1 (64 bands, n_fft 1024), multi-resolution STFT distance, SI-SDR; means over seeds ± std.
Decompress throughput (audio-s/s of the whole decompress call) for vocoder and Griffin-Lim.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

from bench.corpora.labelled import FIELDS, build, build_speech
from bench.report import mean_std
from raydist.audio import decode
from raydist.config import FeatureConfig, ModelConfig, TrainConfig
from raydist.eval.quality import logmel_l1, mrstft, si_sdr

L1_FEATURES = FeatureConfig(n_fft=1024, win_length=1024)  # 64 bands, n_fft 1024
RATE = 16000
OPUS_KBPS = (6, 12)


def scores(ref: np.ndarray, est: np.ndarray, speech: bool) -> dict[str, float]:
    from pesq import pesq

    est = np.pad(est, (0, max(0, len(ref) - len(est))))[: len(ref)]
    out = {"logmel_l1": logmel_l1(ref, est, L1_FEATURES), "mrstft": mrstft(ref, est), "si_sdr": si_sdr(ref, est)}
    if speech:
        out["pesq"] = float(pesq(RATE, ref, est, "wb"))
    return out


def summarise(per_clip: list[dict], kinds: list[str]) -> dict[str, dict[str, float]]:
    """Means per kind of clip (speech, instrument) of every measure."""
    out = {}
    for kind in ("speech", "instrument"):
        rows = [s for s, k in zip(per_clip, kinds) if k == kind]
        out[kind] = {m: float(np.mean([r[m] for r in rows])) for m in rows[0]}
    return out


def held_subset(manifest: str, every: int, root: str) -> tuple[str, list[dict]]:
    """Every `every`-th held clip, as a manifest of absolute paths."""
    base = os.path.dirname(manifest)
    rows = list(csv.DictReader(open(manifest)))[::every]
    for r in rows:
        r["uri"] = os.path.join(base, r["uri"])
    path = os.path.join(root, "held-scored.csv")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, restval="")
        w.writeheader()
        w.writerows(rows)
    return path, rows


def opus(rows: list[dict], kbps: int, tmp: str) -> dict:
    per, bits, seconds = [], 0, 0.0
    for r in rows:
        x = decode(r["uri"], RATE)[0]
        sf.write(f"{tmp}/in.wav", x, RATE, subtype="PCM_16")
        run = ["ffmpeg", "-v", "error", "-y", "-i"]
        subprocess.run([*run, f"{tmp}/in.wav", "-c:a", "libopus", "-b:a", f"{kbps}k", f"{tmp}/c.opus"], check=True)
        subprocess.run([*run, f"{tmp}/c.opus", "-ar", str(RATE), "-ac", "1", f"{tmp}/out.wav"], check=True)
        bits, seconds = bits + 8 * os.path.getsize(f"{tmp}/c.opus"), seconds + len(x) / RATE
        per.append(scores(x, sf.read(f"{tmp}/out.wav", dtype="float32")[0], r["kind"] == "speech"))
    return {"kbps": bits / seconds / 1000, **summarise(per, [r["kind"] for r in rows])}


def raydist_rows(model: str, rows: list[dict], manifest: str, tmp: str, tag: str) -> dict:
    from raydist.pipeline.compress import codec_report, compress
    from raydist.pipeline.decompress import decompress

    codes, out = os.path.join(tmp, f"codes-{tag}"), os.path.join(tmp, f"decoded-{tag}")
    compress([manifest], codes, model, progress=False)
    start = time.perf_counter()
    summary = decompress(codes, model, out, progress=False)
    wall = time.perf_counter() - start
    per = []
    for r in rows:
        x = decode(r["uri"], RATE)[0]
        y = decode(os.path.join(out, os.path.splitext(r["id"])[0] + ".wav"), RATE)[0]
        per.append(scores(x, y, r["kind"] == "speech"))
    return {
        "kbps": codec_report(codes)["file_kbps"],
        "decompress_audio_s_per_s": summary.audio_s / wall,
        **summarise(per, [r["kind"] for r in rows]),
    }


def without_vocoder(model: str, out: str) -> str:
    """The VAE of a VAE + vocoder checkpoint saved alone: what decodes through the Griffin-Lim fallback."""
    from raydist.config import LossConfig
    from raydist.model.checkpoint import checkpoint_file, model_from_state, read_checkpoint, save_checkpoint

    state, digest = read_checkpoint(model)
    m = model_from_state(state, digest, checkpoint_file(model))
    return save_checkpoint(
        out, m.vae, m.features, LossConfig.from_dict(state["loss_config"]), state["step"], state["epoch"]
    )


def score_model(voc: str, rows: list[dict], held: str, tmp: str, tag: str) -> dict:
    return {
        "vocoder": raydist_rows(voc, rows, held, tmp, f"voc{tag}"),
        "griffin-lim": raydist_rows(without_vocoder(voc, os.path.join(tmp, f"vae{tag}")), rows, held, tmp, f"gl{tag}"),
    }


def one_seed(seed: int, train: list[str], held: str, rows: list[dict], tmp: str, args) -> dict:
    from raydist.train.local import train_local, train_vocoder_local

    shape = {"latent_dim": args.latent_dim} if args.latent_dim else {}
    t = time.perf_counter()
    vae = train_local(
        train,
        os.path.join(tmp, f"vae{seed}"),
        TrainConfig(seed=seed, epochs=args.vae_epochs),
        ModelConfig.from_preset(args.preset, **shape),
        device=args.device,
    )
    t_vae = time.perf_counter() - t
    t = time.perf_counter()
    cfg = TrainConfig(seed=seed, epochs=args.vocoder_epochs)
    voc = train_vocoder_local(train, vae, os.path.join(tmp, f"voc{seed}"), cfg, device=args.device)
    t_voc = time.perf_counter() - t
    print(f"seed {seed}: VAE {t_vae:.0f} s, vocoder {t_voc:.0f} s of training", file=sys.stderr)
    return {"train_s": {"vae": t_vae, "vocoder": t_voc}, **score_model(voc, rows, held, tmp, str(seed))}


def render(result: dict) -> str:
    lines = [
        "| codec | kbps on disk | PESQ-wb (speech) | log-mel L1 speech | log-mel L1 instruments "
        "| MR-STFT speech | SI-SDR speech (dB) |",
        "|---|---|---|---|---|---|---|",
    ]
    models = result.get("args", {}).get("model") or []
    # one row per decoder, its mean ± std over seeds; or, scoring given checkpoints, one row per checkpoint
    groups = [(i, [s]) for i, s in enumerate(result["seeds"])] if models else [(None, result["seeds"])]
    for i, seeds in groups:
        for name in ("vocoder", "griffin-lim"):
            runs = [s[name] for s in seeds]

            def col(kind: str, m: str, runs=runs) -> str:
                return mean_std([r[kind][m] for r in runs])

            label = f"raydist, {name}" + (f" ({models[i]})" if i is not None else "")
            lines.append(
                f"| {label} | {mean_std([r['kbps'] for r in runs])} | {col('speech', 'pesq')} "
                f"| {col('speech', 'logmel_l1')} | {col('instrument', 'logmel_l1')} | {col('speech', 'mrstft')} "
                f"| {col('speech', 'si_sdr')} |"
            )
    for kbps in OPUS_KBPS:
        o = result["opus"][str(kbps)]
        lines.append(
            f"| Opus {kbps} kbps (libopus) | {o['kbps']:.2f} | {o['speech']['pesq']:.3f} | {o['speech']['logmel_l1']:.3f} "
            f"| {o['instrument']['logmel_l1']:.3f} | {o['speech']['mrstft']:.3f} | {o['speech']['si_sdr']:.2f} |"
        )
    v = [s["vocoder"]["decompress_audio_s_per_s"] for s in result["seeds"]]
    g = [s["griffin-lim"]["decompress_audio_s_per_s"] for s in result["seeds"]]
    lines.append(
        f"\ndecompress throughput (whole call, local Ray): vocoder {mean_std(v)} audio-s/s, "
        f"Griffin-Lim {mean_std(g)} audio-s/s"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench codec", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--every", type=int, default=5, help="score every N-th held clip")
    ap.add_argument("--speech", type=int, default=60, help="extra training phrases per build_speech voice (0: none)")
    ap.add_argument("--preset", default="small", help="VAE preset (the vocoder takes the preset's shape)")
    ap.add_argument("--latent-dim", type=int, default=0, help="latent dims (0: the preset's); sets the bitrate")
    from raydist.cli.commands import VOCODER_EPOCHS

    ap.add_argument("--vae-epochs", type=int, default=TrainConfig().epochs, help="the shipped default")
    ap.add_argument("--vocoder-epochs", type=int, default=VOCODER_EPOCHS, help="the shipped default")
    ap.add_argument("--device", default="cpu", help="where the models train: cpu or cuda (bf16 autocast)")
    ap.add_argument("--model", nargs="*", default=[], help="score these VAE + vocoder checkpoints; train none")
    args = ap.parse_args(argv)
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg is not installed: apt-get install ffmpeg")
    from raydist.cluster.session import init_ray

    with tempfile.TemporaryDirectory() as tmp:
        train = [] if args.model else [build(os.path.join(tmp, "tune"), "tune")]
        if args.speech and not args.model:
            train.append(build_speech(os.path.join(tmp, "speech"), args.speech))
        held = build(os.path.join(tmp, "held"), "held")
        scored, rows = held_subset(held, args.every, tmp)
        print(f"training on {train}; scoring {len(rows)} held clips", file=sys.stderr)
        result = {"args": vars(args), "opus": {str(k): opus(rows, k, tmp) for k in OPUS_KBPS}, "seeds": []}
        init_ray()
        runs = [lambda i=i, m=m: score_model(m, rows, scored, tmp, str(i)) for i, m in enumerate(args.model)]
        runs = runs or [lambda s=s: one_seed(s, train, scored, rows, tmp, args) for s in range(args.seeds)]
        for run in runs:
            result["seeds"].append(run())
    print(render(result))
    return result


def headline(result: dict) -> list[tuple[str, str]]:
    voc = [s["vocoder"] for s in result["seeds"]]
    opus = result["opus"]["6"]
    return [
        (
            f"codec ({result['args']['preset']} preset): kbps on disk, PESQ-wb on held speech (Opus 6 kbps)",
            f"{mean_std([r['kbps'] for r in voc], 2)} kbps, {mean_std([r['speech']['pesq'] for r in voc])} "
            f"({opus['kbps']:.2f} kbps, {opus['speech']['pesq']:.3f})",
        )
    ]

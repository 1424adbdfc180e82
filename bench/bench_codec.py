"""raydist's latent codec beside Opus on the same corpus, with the same metrics.

    .venv/bin/python bench/bench_codec.py --clips 40

Trains a VAE on the built-in corpus with the shipped trainer's step and settings
(`raydist.train.local`, --epochs), or takes --model, compresses and decompresses
the corpus with raydist on a local Ray, encodes the same clips (16 kHz mono) with Opus through
soundfile at its lowest bitrates, and prints one table: kbps from the bytes on disk, log-mel L1,
multi-resolution STFT distance and SI-SDR (means over clips).
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile

import numpy as np
import soundfile as sf

from raydist.audio import decode
from raydist.config import TrainConfig
from raydist.demo.corpus import write_corpus
from raydist.eval.quality import compare, evaluate_pairs
from raydist.io.inputs import resolve_inputs
from raydist.train.local import train_local

OPUS_LEVELS = (1.0, 0.97, 0.95)  # soundfile compression_level -> about 7, 12 and 20 kbps


def opus_rows(manifest: str) -> list[dict]:
    clips = [decode(r["uri"], 16000)[0] for r in resolve_inputs([manifest]).table.to_pylist()]
    seconds = sum(len(c) for c in clips) / 16000
    rows = []
    for level in OPUS_LEVELS:
        size, scores = 0, []
        for x in clips:
            buf = io.BytesIO()
            sf.write(buf, x, 16000, format="OGG", subtype="OPUS", compression_level=level)
            size += len(buf.getvalue())
            buf.seek(0)
            y, _ = sf.read(buf, dtype="float32")
            scores.append(compare(x, y))
        rows.append({"codec": f"opus (level {level})", "kbps": size * 8 / seconds / 1000, **_mean(scores)})
    return rows


def _mean(scores: list[dict]) -> dict:
    return {k: float(np.mean([s[k] for s in scores])) for k in ("logmel_l1", "mrstft", "si_sdr")}


def raydist_row(manifest: str, model: str, tmp: str) -> dict:
    from raydist.cluster.session import init_ray
    from raydist.pipeline.compress import codec_report, compress
    from raydist.pipeline.decompress import decompress

    init_ray()
    codes, decoded = os.path.join(tmp, "codes"), os.path.join(tmp, "decoded")
    compress([manifest], codes, model, progress=False)
    decompress(codes, model, decoded)
    report = codec_report(codes)
    return {
        "codec": "raydist int8 latents",
        "kbps": report["file_kbps"],
        **evaluate_pairs([manifest], [decoded])["mean"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="training epochs when no --model")
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_corpus(os.path.join(tmp, "corpus"), n_clips=args.clips, seed=7)
        model = args.model
        if model is None:
            model = train_local([manifest], os.path.join(tmp, "model"), TrainConfig(epochs=args.epochs))
        rows = [raydist_row(manifest, model, tmp), *opus_rows(manifest)]
    print(f"{'codec':24s} {'kbps':>7s} {'logmel_l1':>10s} {'mrstft':>8s} {'si_sdr':>8s}")
    for r in rows:
        print(f"{r['codec']:24s} {r['kbps']:7.2f} {r['logmel_l1']:10.3f} {r['mrstft']:8.3f} {r['si_sdr']:8.2f}")


if __name__ == "__main__":
    main()

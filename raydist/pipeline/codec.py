"""`raydist compress` / `raydist decompress` on Ray Data.

compress:   the embedding pipeline with a CompressBatch actor: codes/ + errors/, exactly once.
decompress: codes/ -> decoder -> log-mel -> InverseMelScale + GriffinLim -> one file per clip at
            its original rate and duration, on an actor pool. Refuses a different checkpoint.
"""

from __future__ import annotations

import io
import posixpath
import time
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import ray
import soundfile as sf

from raydist.audio.decode import resample
from raydist.codec import dequantize, latents_to_audio
from raydist.config import EmbedConfig
from raydist.inputs import AUDIO_EXTENSIONS
from raydist.model.checkpoint import load_model
from raydist.pipeline.embed import COMPRESS, RunSummary, _pool, run_pipeline
from raydist.pipeline.store import RunStore, read_table

FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16")}


class CodecError(ValueError):
    pass


def compress(
    inputs: list[str],
    out: str,
    model_uri: str,
    cfg: EmbedConfig = EmbedConfig(),
    storage_options: dict[str, Any] | None = None,
    progress: bool = True,
) -> RunSummary:
    """Compress `inputs` into quantised latents under `out`/codes (Ray must be initialised)."""
    return run_pipeline(COMPRESS, inputs, out, model_uri, cfg, storage_options, progress)


def codec_report(out: str, storage_options: dict[str, Any] | None = None) -> dict[str, float]:
    """Bitrates and compression ratios of a compressed set, from the bytes on disk."""
    store = RunStore(out, storage_options)
    cols = ["duration_s", "sample_rate", "channels", "source_bytes", "n_frames", "scale"]
    codes = read_table(out, "codes", storage_options, columns=cols)  # not the codes themselves
    if codes.num_rows == 0:
        raise CodecError(f"{out} holds no compressed clips")
    seconds = float(pa.compute.sum(codes.column("duration_s")).as_py())
    dims = pa.compute.list_value_length(codes.column("scale")).to_numpy(zero_copy_only=False)
    n_frames = codes.column("n_frames").to_numpy(zero_copy_only=False)
    payload = int((n_frames * dims).sum() + 2 * dims.sum())  # int8 codes + float16 scales
    files = sum(store.fs.size(p) for p in store.committed_files("codes"))
    source = int(pa.compute.sum(codes.column("source_bytes")).as_py())
    pcm16 = 2 * sum(
        d * r * c for d, r, c in zip(*(codes.column(k).to_pylist() for k in ("duration_s", "sample_rate", "channels")))
    )
    return {
        "clips": codes.num_rows,
        "audio_s": seconds,
        "payload_bytes": payload,
        "file_bytes": files,
        "payload_kbps": payload * 8 / seconds / 1000,
        "file_kbps": files * 8 / seconds / 1000,
        "ratio_vs_source": source / files,
        "ratio_vs_pcm16": pcm16 / files,
    }


def safe_relpath(clip_id: str, ext: str) -> str:
    """An output path for an id that cannot leave the output root: no absolute paths, no '..'."""
    parts = [p for p in clip_id.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    stem = "/".join(parts) or "clip"
    root, old = posixpath.splitext(stem)
    return f"{root if old.lower() in AUDIO_EXTENSIONS else stem}.{ext}"


MAX_RATE, MIN_RATE = 192_000, 8_000


def check_code_row(row: dict, m) -> None:
    """A compressed set is untrusted input: check one row against the model before any decoding
    allocates memory for it (frame count, code length, scales, rate and duration all consistent)."""
    dims, per_frame = m.vae.cfg.latent_dim, m.vae.cfg.downsample * m.features.hop_length
    n, codes, scale = row.get("n_frames"), row.get("codes"), row.get("scale")
    if not isinstance(n, int) or n < 1:
        raise CodecError(f"n_frames must be a positive integer, got {n!r}")
    if scale is None or len(scale) != dims:
        raise CodecError(f"scale has {None if scale is None else len(scale)} entries; the model has {dims} latent dims")
    if not all(v is not None and np.isfinite(v) and v >= 0 for v in scale):
        raise CodecError("scale holds a negative, missing or non-finite value")
    if not isinstance(codes, bytes) or len(codes) != n * dims:
        raise CodecError(f"codes hold {len(codes) if codes else 0} bytes; n_frames x dims is {n * dims}")
    samples, rate, seconds = row.get("num_samples"), row.get("sample_rate"), row.get("duration_s")
    if not isinstance(samples, int) or samples < 1 or samples // per_frame + 1 != n:  # as the encoder counts
        raise CodecError(f"num_samples {samples!r} does not fit {n} latent frames of {per_frame} samples")
    if not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
        raise CodecError(f"sample_rate {rate!r} is outside {MIN_RATE}..{MAX_RATE} Hz")
    expected = samples / m.features.sample_rate
    if not isinstance(seconds, float) or not np.isfinite(seconds) or abs(seconds - expected) > 0.01 + 1 / MIN_RATE:
        raise CodecError(f"duration_s {seconds!r} does not match num_samples ({expected:.3f} s)")


class DecodeAudio:
    """Ray Data actor: codes rows -> audio files; returns id, path, seconds, error."""

    def __init__(self, model_uri: str, out: str, fmt: str, storage_options: dict | None = None):
        self.m = load_model(model_uri, storage_options=storage_options)
        self.out, self.fmt, self.so = out.rstrip("/"), fmt, storage_options or {}

    def __call__(self, batch: pa.Table) -> pa.Table:
        paths, errors = [], []
        for row in batch.to_pylist():
            try:
                paths.append(self._one(row))
                errors.append(None)
            except Exception as e:  # one bad row must not stop the others
                paths.append(None)
                errors.append(f"{type(e).__name__}: {e}")
        return pa.table(
            {
                "id": batch.column("id"),
                "path": pa.array(paths, pa.string()),
                "seconds": batch.column("duration_s"),
                "error": pa.array(errors, pa.string()),
            }
        )

    def _one(self, row: dict) -> str:
        check_code_row(row, self.m)
        mean = dequantize(row["codes"], np.asarray(row["scale"], np.float32), row["n_frames"])
        wave = latents_to_audio(self.m, mean, row["num_samples"])
        wave = resample(wave, self.m.features.sample_rate, row["sample_rate"])
        n = round(row["duration_s"] * row["sample_rate"])
        wave = np.pad(wave, (0, max(0, n - len(wave))))[:n]
        buf = io.BytesIO()
        sf.write(buf, wave, row["sample_rate"], format=FORMATS[self.fmt][0], subtype=FORMATS[self.fmt][1])
        path = f"{self.out}/{safe_relpath(row['id'], self.fmt)}"
        fs, p = fsspec.core.url_to_fs(path, **self.so)
        fs.makedirs(posixpath.dirname(p), exist_ok=True)
        with fs.open(p, "wb") as f:
            f.write(buf.getvalue())
        return path


@dataclass
class DecompressSummary:
    out: str
    ok: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    audio_s: float = 0.0
    wall_s: float = 0.0

    def line(self) -> str:
        return (
            f"decompressed {self.ok} clips ({self.audio_s / 3600:.3f} h) into {self.out} in {self.wall_s:.1f} s"
            f"; {len(self.failed)} failed" + "".join(f"\n  {i}: {e}" for i, e in self.failed[:10])
        )


def decompress(
    compressed: str,
    model_uri: str,
    out: str,
    fmt: str = "wav",
    cfg: EmbedConfig = EmbedConfig(),
    storage_options: dict[str, Any] | None = None,
) -> DecompressSummary:
    """Decode every clip of a compressed set to an audio file under `out` (Ray must be initialised)."""
    if fmt not in FORMATS:
        raise CodecError(f"format must be one of {sorted(FORMATS)}, got {fmt!r}")
    start = time.time()
    so = storage_options or {}
    model = load_model(model_uri, storage_options=so)
    for m in RunStore(compressed, so).manifests():
        if m["model"]["sha256"] != model.checkpoint_id:
            raise CodecError(
                f"{compressed} was compressed with checkpoint {m['model']['sha256'][:12]} ({m['model']['uri']}); "
                f"{model_uri} is {model.checkpoint_id[:12]}: decode with the checkpoint that compressed it"
            )
    store = RunStore(compressed, so)
    files = store.committed_files("codes")
    if not files:
        raise CodecError(f"{compressed} holds no compressed clips")
    summary = DecompressSummary(out)
    actors, cpus, _ = _pool(cfg)
    step = 8
    # stream the committed parts from storage: the driver never holds the codes
    ds = ray.data.read_parquet(files, filesystem=pafs.PyFileSystem(pafs.FSSpecHandler(store.fs)))
    ds = ds.map_batches(
        DecodeAudio,
        fn_constructor_args=(model_uri, out, fmt, so),
        batch_size=step,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus,
    )
    for row in ds.iter_rows():
        if row["error"] is None:
            summary.ok, summary.audio_s = summary.ok + 1, summary.audio_s + row["seconds"]
        else:
            summary.failed.append((row["id"], row["error"]))
    summary.wall_s = time.time() - start
    return summary


__all__ = ["CodecError", "codec_report", "compress", "decompress", "safe_relpath"]

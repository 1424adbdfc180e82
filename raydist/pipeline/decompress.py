"""`raydist decompress`: committed codes/ parts -> `DecodeAudio` actors (the codec's decoder) ->
one audio file per clip at its original rate and duration. Refuses a different checkpoint; a
bad row fails alone and is reported with its cause."""

from __future__ import annotations

import io
import posixpath
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import ray
import soundfile as sf

from raydist.codec.format import DECODED_FORMATS as FORMATS
from raydist.codec.format import CodecError, safe_relpath
from raydist.config import ResourceConfig
from raydist.console import progress as show
from raydist.io.fs import put_whole, url_to_fs
from raydist.io.store import RunStore
from raydist.pipeline.runner import pool, stop_datasets
from raydist.signals import Interrupted, name, run_until_signal

DECODE_BATCH = 8  # rows per decoder call


class DecodeAudio:
    """Ray Data actor: codes rows -> audio files; returns id, path, seconds, error."""

    def __init__(self, model_uri: str, out: str, fmt: str, storage_options: dict | None = None, device: str = "cpu"):
        from raydist.codec.codec import Codec
        from raydist.model.checkpoint import load_model

        self.codec = Codec(load_model(model_uri, device=device, storage_options=storage_options))
        self.out, self.fmt, self.so = out.rstrip("/"), fmt, storage_options or {}

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        try:  # the whole batch in one vocoder pass per clip length
            waves: list = self.codec.decode_many(rows)
        except Exception:  # a bad row: decode one by one, so it fails alone
            waves = [None] * len(rows)
        paths, errors = [], []
        for row, wave in zip(rows, waves):
            try:
                paths.append(self._one(row, wave))
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

    def _one(self, row: dict, wave=None) -> str:
        wave = self.codec.decode(row) if wave is None else wave
        buf = io.BytesIO()
        sf.write(buf, wave, row["sample_rate"], format=FORMATS[self.fmt][0], subtype=FORMATS[self.fmt][1])
        path = f"{self.out}/{safe_relpath(row['id'], self.fmt)}"
        fs, p = url_to_fs(path, self.so)
        fs.makedirs(posixpath.dirname(p), exist_ok=True)
        put_whole(fs, p, buf.getvalue())  # an interrupted run leaves no half-written file
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
    resources: ResourceConfig = ResourceConfig(),
    storage_options: dict[str, Any] | None = None,
    progress: bool = True,
) -> DecompressSummary:
    """Decode every clip of a compressed set to an audio file under `out` (Ray must be initialised)."""
    from raydist.codec.inversion import decoder_name
    from raydist.model.checkpoint import load_model

    if fmt not in FORMATS:
        raise CodecError(f"format must be one of {sorted(FORMATS)}, got {fmt!r}")
    start = time.time()
    so = storage_options or {}
    model = load_model(model_uri, storage_options=so)
    store = RunStore(compressed, so)
    for m in store.manifests():
        # the same file, or the same VAE with a vocoder trained on it since (`vae_sha256`)
        if model.checkpoint_id != m["model"]["sha256"] and model.vae_id != m["model"].get("vae_sha256"):
            raise CodecError(
                f"{compressed} was compressed with checkpoint {m['model']['sha256'][:12]} ({m['model']['uri']}); "
                f"{model_uri} is {model.checkpoint_id[:12]} with another VAE: decode with the checkpoint that "
                f"compressed it, or one trained from it by `raydist train --stage vocoder`"
            )
    files = store.committed_files("codes")
    if not files:
        raise CodecError(f"{compressed} holds no compressed clips")
    summary = DecompressSummary(out)
    actors, cpus, gpus = pool(resources)
    print(f"raydist: decoding with {decoder_name(model)} on {actors} {'GPU' if gpus else 'CPU'} actor(s)")
    # stream the committed parts from storage: the driver never holds the codes
    ds = ray.data.read_parquet(files, filesystem=pafs.PyFileSystem(pafs.FSSpecHandler(store.fs)))
    if len(files) < 2 * actors:  # one part is one block: split it so that every actor gets work
        ds = ds.repartition(2 * actors)
    ds = ds.map_batches(
        DecodeAudio,
        fn_constructor_args=(model_uri, out, fmt, so, "cuda" if gpus else "cpu"),
        batch_size=DECODE_BATCH,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus,
        num_gpus=gpus,
    )
    total = _count_rows(store.fs, files)

    def collect() -> None:
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            for row in batch.to_pylist():
                if row["error"] is None:
                    summary.ok, summary.audio_s = summary.ok + 1, summary.audio_s + row["seconds"]
                else:
                    summary.failed.append((row["id"], row["error"]))
            if progress:
                show(line())

    def line() -> str:
        el = time.time() - start
        return (
            f"raydist decompress: {summary.ok + len(summary.failed)}/{total or '?'} clips "
            f"({len(summary.failed)} failed), {summary.audio_s / 3600:.3f} h audio, "
            f"{summary.audio_s / max(el, 1e-9):.0f} audio-s/s"
        )

    signum = run_until_signal(collect, stop_datasets)
    if progress:
        show(line(), final=True)
    if signum:
        raise Interrupted(
            signum,
            f"decompress interrupted by {name(signum)}: {summary.ok} of {total or '?'} clips written to {out} "
            f"(each file whole); the same command decodes the set again",
        )
    summary.wall_s = time.time() - start
    return summary


def _count_rows(fs, files: list[str]) -> int | None:
    """Rows in the committed parts, from their footers (None when a footer is unreadable: the
    pipeline then reports the damaged part itself)."""
    try:
        total = 0
        for f in files:
            with fs.open(f, "rb") as fh:
                total += pq.ParquetFile(fh).metadata.num_rows
        return total
    except Exception:  # noqa: BLE001 - only the progress display depends on it
        return None


__all__ = ["CodecError", "DecodeAudio", "decompress", "safe_relpath"]

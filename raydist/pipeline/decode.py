"""The pipeline's first stage, shared by embed and compress: `decode_batch` (Ray Data CPU tasks)
turns a batch of inputs into mono waveforms at the model rate, or error rows. Takes and returns a
pyarrow Table and runs without Ray, so tests call it on hand-built tables. Also the error-column
helpers every stage uses: a failed input becomes a row, never a crashed job."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from raydist.audio.errors import AudioError
from raydist.io.schema import list_array

ERROR_COLUMNS = ("error_stage", "error_type", "error_message")


def error_cols(n: int) -> dict[str, list]:
    return {k: [None] * n for k in ERROR_COLUMNS}


def set_error(cols: dict[str, list], i: int, e: BaseException, stage: str) -> None:
    cols["error_stage"][i] = stage
    cols["error_type"][i] = type(e).__name__
    cols["error_message"][i] = str(e)[:2000]


def decode_batch(
    batch: pa.Table, sample_rate: int, storage_options: dict | None = None, sources: list[bytes] | None = None
) -> pa.Table:
    """id, uri, label, split -> + wave (list<float32> at sample_rate), source info, error columns.
    `sources`: the encoded files themselves, one per row (a served request's body), read instead
    of the uris (which then only name them)."""
    from raydist.audio.decoding import decode  # torch: imported in decode tasks, not in writers

    n = batch.num_rows
    uris = batch.column("uri").to_pylist()
    waves: list[np.ndarray] = []
    info: dict[str, list] = {k: [None] * n for k in ("sample_rate", "channels", "format", "duration_s", "source_bytes")}
    errs = error_cols(n)
    for i, uri in enumerate(uris):
        try:
            source = uri if sources is None else sources[i]
            wave, meta = decode(source, sample_rate, name=uri, storage_options=storage_options)
            info["sample_rate"][i], info["channels"][i] = meta.sample_rate, meta.channels
            info["format"][i], info["duration_s"][i] = meta.format, meta.duration_s
            info["source_bytes"][i] = meta.bytes
        except AudioError as e:
            wave = np.zeros(0, np.float32)
            set_error(errs, i, e, e.stage)
        except Exception as e:  # anything else a broken file provokes in a codec: an error row, not a crash
            wave = np.zeros(0, np.float32)
            set_error(errs, i, e, "decode")
        waves.append(wave)
    cols = {name: batch.column(name) for name in ("id", "uri", "label", "split")}
    cols["wave"] = list_array(waves)
    cols["sample_rate"] = pa.array(info["sample_rate"], pa.int32())
    cols["channels"] = pa.array(info["channels"], pa.int32())
    cols["format"] = pa.array(info["format"], pa.string())
    cols["duration_s"] = pa.array(info["duration_s"], pa.float64())
    cols["source_bytes"] = pa.array(info["source_bytes"], pa.int64())
    cols.update({k: pa.array(v, pa.string()) for k, v in errs.items()})
    return pa.table(cols)


def waves(column: pa.ChunkedArray) -> list[np.ndarray]:
    """list<float32> column -> zero-copy numpy views, one per row."""
    out = []
    for chunk in column.chunks:
        offsets, values = chunk.offsets.to_numpy(), chunk.values.to_numpy(zero_copy_only=False)
        out += [values[offsets[i] : offsets[i + 1]] for i in range(len(chunk))]
    return out

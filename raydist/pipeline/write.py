"""The pipeline's writer stage: wide result rows -> one Parquet part per output table in the run's
staging folder. Imports no torch: Ray starts writer tasks in plain worker processes, and a torch
import there (about 1.5 s of CPU per process) cost more than the writing itself."""

from __future__ import annotations

import hashlib
import io
import posixpath
from typing import Callable

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from raydist.schema import CLIPS, CODES, ERRORS, SEGMENTS, frames_schema


def split_codes(batch: pa.Table, dtype: str) -> dict[str, pa.Table]:
    """A batch of compressed rows -> the codes and errors tables."""
    ok = pc.is_null(batch.column("error_stage"))
    return {
        "codes": batch.filter(ok).select(CODES.names).cast(CODES),
        "errors": _errors(batch.filter(pc.invert(ok))),
    }


def _errors(bad: pa.Table) -> pa.Table:
    return pa.table(
        {
            "id": bad.column("id"),
            "uri": bad.column("uri"),
            "stage": bad.column("error_stage"),
            "error_type": bad.column("error_type"),
            "message": bad.column("error_message"),
        }
    ).cast(ERRORS)


def split_tables(batch: pa.Table, dtype: str) -> dict[str, pa.Table]:
    """A batch of wide result rows -> the four output tables."""
    ok = pc.is_null(batch.column("error_stage"))
    good, bad = batch.filter(ok), batch.filter(pc.invert(ok))
    frames = good.select(frames_schema(dtype).names)
    seg_counts = (
        pc.list_value_length(good.column("seg_start")).to_numpy(zero_copy_only=False)
        if good.num_rows
        else np.zeros(0, int)
    )
    clips = pa.table(
        {
            **{
                k: good.column(k)
                for k in (
                    "id",
                    "uri",
                    "label",
                    "split",
                    "duration_s",
                    "sample_rate",
                    "channels",
                    "format",
                    "n_frames",
                    "embedding",
                    "energy_mean",
                    "active_fraction",
                )
            },
            "n_segments": pa.array(seg_counts, pa.int32()),
        }
    )
    ids = np.repeat(np.array(good.column("id").to_pylist(), dtype=object), seg_counts)
    seg_index = np.concatenate([np.arange(c) for c in seg_counts]) if len(seg_counts) else np.zeros(0)
    segments = pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "segment": pa.array(seg_index, pa.int32()),
            "start_s": pc.list_flatten(good.column("seg_start")),
            "end_s": pc.list_flatten(good.column("seg_end")),
            "boundary_score": pc.list_flatten(good.column("seg_score")),
            "active_fraction": pc.list_flatten(good.column("seg_active")),
            "embedding": pc.list_flatten(good.column("seg_embedding")),
        }
    )
    return {
        "frames": frames.cast(frames_schema(dtype)),
        "clips": clips.cast(CLIPS),
        "segments": segments.cast(SEGMENTS),
        "errors": _errors(bad),
    }


def part_name(run_id: str, ids: list[str]) -> str:
    """Deterministic from the batch's ids: a retried task overwrites its own earlier attempt."""
    digest = hashlib.sha1("\n".join(sorted(ids)).encode()).hexdigest()[:16]
    return f"part-{run_id}-{digest}.parquet"


def write_parts(
    batch: pa.Table,
    split: Callable[[pa.Table, str], dict[str, pa.Table]],
    staging: str,
    run_id: str,
    dtype: str,
    metadata: dict[str, str],
    storage_options: dict | None = None,
) -> pa.Table:
    """Write one Parquet part per non-empty table under `staging`/<table>/; return a summary row."""
    tables = split(batch, dtype)
    ids = batch.column("id").to_pylist()
    name = part_name(run_id, ids)
    written, sizes = [], []
    for table_name, table in tables.items():
        if table.num_rows == 0:
            continue
        table = table.replace_schema_metadata(
            {
                **(table.schema.metadata or {}),
                **{k.encode(): v.encode() for k, v in metadata.items()},
                b"raydist.table": table_name.encode(),
            }
        )
        buf = io.BytesIO()
        pq.write_table(table, buf, row_group_size=1000 if table_name == "frames" else 100_000, compression="zstd")
        with fsspec.open(posixpath.join(staging, table_name, name), "wb", **(storage_options or {})) as f:
            f.write(buf.getvalue())
        written.append(table_name)
        sizes.append(buf.getbuffer().nbytes)
    good = batch.filter(pc.is_null(batch.column("error_stage")))
    pcm16 = pc.multiply(
        pc.multiply(good.column("duration_s"), good.column("sample_rate").cast(pa.float64())),
        good.column("channels").cast(pa.float64()),
    )
    payload = (
        sum(
            len(c) + 2 * len(s)
            for c, s in zip(tables["codes"].column("codes").to_pylist(), tables["codes"].column("scale").to_pylist())
        )
        if "codes" in tables
        else 0
    )
    return pa.table(
        {
            "part": [name],
            "tables": [written],
            "written_bytes": [sizes],
            "ok": [good.num_rows],
            "failed": [tables["errors"].num_rows],
            "audio_s": [float(pc.sum(good.column("duration_s")).as_py() or 0.0)],
            "source_bytes": [int(pc.sum(good.column("source_bytes")).as_py() or 0)],
            "pcm16_bytes": [2.0 * float(pc.sum(pcm16).as_py() or 0.0)],
            "payload_bytes": [payload],
            "ids": [ids],
        }
    )

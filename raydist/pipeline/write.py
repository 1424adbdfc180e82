"""The pipeline's writer stage: wide result rows -> the spec's split -> one Parquet part per
output table in the run's staging folder. Imports no torch: Ray starts writer tasks in plain
worker processes, and a torch import there (about 1.5 s of CPU per process) cost more than the
writing itself (tests/test_layout.py checks it)."""

from __future__ import annotations

import hashlib
import io
import posixpath
from typing import Callable

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from raydist.codec.format import table_payload_bytes, table_pcm16_bytes


def part_name(run_id: str, ids: list[str]) -> str:
    """Deterministic from the batch's ids: a retried task overwrites its own earlier attempt."""
    digest = hashlib.sha1("\n".join(sorted(ids)).encode()).hexdigest()[:16]
    return f"part-{run_id}-{digest}.parquet"


def write_parts(
    batch: pa.Table,
    split: Callable[[pa.Table, dict[str, dict]], dict[str, pa.Table]],
    staging: str,
    run_id: str,
    configs: dict[str, dict],
    metadata: dict[str, str],
    storage_options: dict | None = None,
) -> pa.Table:
    """Write one Parquet part per non-empty table under `staging`/<table>/; return a summary row."""
    tables = split(batch, configs)
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
    return pa.table(
        {
            "part": [name],
            "tables": [written],
            "written_bytes": [sizes],
            "ok": [good.num_rows],
            "failed": [tables["errors"].num_rows],
            "audio_s": [float(pc.sum(good.column("duration_s")).as_py() or 0.0)],
            "source_bytes": [int(pc.sum(good.column("source_bytes")).as_py() or 0)],
            "pcm16_bytes": [table_pcm16_bytes(good)],
            "payload_bytes": [table_payload_bytes(tables["codes"]) if "codes" in tables else 0],
            "ids": [ids],
            "error_ids": [tables["errors"].column("id").to_pylist()],
        }
    )

"""`raydist compress`: the runner with the codec spec. `CompressBatch` (actor pool) encodes
decoded clips and turns their latents into codec rows (`raydist.codec`); `split_codes` (writer
tasks) cuts them into codes/ and errors/. `codec_report` gives bitrates and compression ratios
from the bytes on disk. Like `embed`, no torch at import time (writers unpickle `split_codes`)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from raydist.codec.format import CodecError, table_payload_bytes, table_pcm16_bytes
from raydist.config import OutputConfig, ResourceConfig
from raydist.io.schema import CODES
from raydist.io.store import RunStore, read_table
from raydist.pipeline.embed import EncodeBatch, error_table
from raydist.pipeline.runner import RunSummary, Spec, run_pipeline


class CompressBatch(EncodeBatch):
    """Ray Data actor: like EncodeBatch, but each clip becomes a codec row (int8 codes, scales,
    and what decoding needs)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from raydist.codec.codec import Codec

        self.codec = Codec(self.m)

    def _rows(self, batch: pa.Table, results: list, errs: dict[str, list]) -> pa.Table:
        lengths = pc.list_value_length(batch.column("wave")).to_pylist()  # samples at the model rate
        rows = [self.codec.encode(lat.mean, n) if lat is not None else None for lat, n in zip(results, lengths)]
        out = {k: batch.column(k) for k in ("id", "uri", "duration_s", "sample_rate", "channels", "source_bytes")}
        for name, type_ in (("num_samples", pa.int64()), ("n_frames", pa.int32()), ("codes", pa.binary())):
            out[name] = pa.array([r[name] if r else None for r in rows], type_)
        out["scale"] = pa.array([r["scale"].tolist() if r else None for r in rows], pa.list_(pa.float16()))
        out.update({k: pa.array(v, pa.string()) for k, v in errs.items()})
        return pa.table(out)


def split_codes(batch: pa.Table, configs: dict[str, dict]) -> dict[str, pa.Table]:
    """A batch of compressed rows -> the codes and errors tables."""
    ok = pc.is_null(batch.column("error_stage"))
    return {
        "codes": batch.filter(ok).select(CODES.names).cast(CODES),
        "errors": error_table(batch.filter(pc.invert(ok))),
    }


COMPRESS = Spec("compress", CompressBatch, split_codes, ("codes", "errors"))


def compress(
    inputs: list[str],
    out: str,
    model_uri: str,
    resources: ResourceConfig = ResourceConfig(),
    output: OutputConfig = OutputConfig(),
    retry_errors: bool = False,
    storage_options: dict[str, Any] | None = None,
    progress: bool = True,
) -> RunSummary:
    """Compress `inputs` into codec rows under `out`/codes (Ray must be initialised); exactly
    once and resumable, like embed."""
    configs = {"output_config": output.to_dict()}
    return run_pipeline(COMPRESS, inputs, out, model_uri, resources, configs, retry_errors, storage_options, progress)


def codec_report(out: str, storage_options: dict[str, Any] | None = None) -> dict[str, float]:
    """Bitrates and compression ratios of a compressed set, from the bytes on disk."""
    store = RunStore(out, storage_options)
    cols = ["duration_s", "sample_rate", "channels", "source_bytes", "n_frames", "scale"]
    codes = read_table(out, "codes", storage_options, columns=cols)  # not the codes themselves
    if codes.num_rows == 0:
        raise CodecError(f"{out} holds no compressed clips")
    seconds = float(pc.sum(codes.column("duration_s")).as_py())
    payload = table_payload_bytes(codes)
    files = sum(store.fs.size(p) for p in store.committed_files("codes"))
    source = int(pc.sum(codes.column("source_bytes")).as_py())
    pcm16 = table_pcm16_bytes(codes)
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


__all__ = ["COMPRESS", "CompressBatch", "codec_report", "compress", "split_codes"]

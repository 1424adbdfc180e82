"""The embedding pipeline's stage functions. Each takes and returns a pyarrow Table (one Ray Data
batch) and runs without Ray, so tests call them on hand-built tables.

decode_batch  (CPU tasks)     inputs -> mono waveforms at the model rate, or error rows
EncodeBatch   (actor pool)    waveforms -> latents, clip features, segments, or error rows
write_parts   (CPU tasks)     results -> one Parquet part per table in the run's staging folder
"""

from __future__ import annotations

import hashlib
import io
import posixpath
from typing import Any, Callable

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raydist.audio import AudioError, decode
from raydist.codec import quantize
from raydist.config import EmbedConfig
from raydist.embedding import Latents, encode_many, min_samples, scene_embedding, timestamps_s
from raydist.model.checkpoint import LoadedModel, load_model
from raydist.schema import CLIPS, CODES, ERRORS, SEGMENTS, frames_schema, list_array, matrix_array
from raydist.segmentation import segment, with_activity

SILENCE_BELOW_PEAK = 6.9  # nats of log-mel power (30 dB) under the clip's loudest frame
SILENCE_FLOOR = -9.2  # log(1e-4): frames quieter than this are silent whatever the peak
ERROR_COLUMNS = ("error_stage", "error_type", "error_message")


def _error_cols(n: int) -> dict[str, list]:
    return {k: [None] * n for k in ERROR_COLUMNS}


def _set_error(cols: dict[str, list], i: int, e: BaseException, stage: str) -> None:
    cols["error_stage"][i] = stage
    cols["error_type"][i] = type(e).__name__
    cols["error_message"][i] = str(e)[:2000]


# ---------------------------------------------------------------- decode (CPU tasks)


def decode_batch(batch: pa.Table, sample_rate: int, storage_options: dict | None = None) -> pa.Table:
    """id, uri, label, split -> + wave (list<float32> at sample_rate), source info, error columns."""
    n = batch.num_rows
    uris = batch.column("uri").to_pylist()
    waves: list[np.ndarray] = []
    info: dict[str, list] = {k: [None] * n for k in ("sample_rate", "channels", "format", "duration_s", "source_bytes")}
    errs = _error_cols(n)
    for i, uri in enumerate(uris):
        try:
            wave, meta = decode(uri, sample_rate, storage_options=storage_options)
            info["sample_rate"][i], info["channels"][i] = meta.sample_rate, meta.channels
            info["format"][i], info["duration_s"][i] = meta.format, meta.duration_s
            info["source_bytes"][i] = meta.bytes
        except AudioError as e:
            wave = np.zeros(0, np.float32)
            _set_error(errs, i, e, e.stage)
        except Exception as e:  # anything else a broken file provokes in a codec: an error row, not a crash
            wave = np.zeros(0, np.float32)
            _set_error(errs, i, e, "decode")
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


def _waves(column: pa.ChunkedArray) -> list[np.ndarray]:
    """list<float32> column -> zero-copy numpy views, one per row."""
    out = []
    for chunk in column.chunks:
        offsets, values = chunk.offsets.to_numpy(), chunk.values.to_numpy(zero_copy_only=False)
        out += [values[offsets[i] : offsets[i + 1]] for i in range(len(chunk))]
    return out


# ---------------------------------------------------------------- encode (actor pool)


class EncodeBatch:
    """Ray Data actor: load the model once, then encode batches of decoded clips."""

    def __init__(self, model_uri: str, cfg: dict[str, Any], storage_options: dict | None = None, device: str = "cpu"):
        self.cfg = EmbedConfig.from_dict(cfg)
        self.device = device
        self.m: LoadedModel = load_model(model_uri, device=device, storage_options=storage_options)

    def __call__(self, batch: pa.Table) -> pa.Table:
        n = batch.num_rows
        errs = {k: batch.column(k).to_pylist() for k in ERROR_COLUMNS}
        waves = _waves(batch.column("wave"))
        good = [i for i in range(n) if errs["error_stage"][i] is None]
        shortest = min_samples(self.m)
        for i in list(good):
            if len(waves[i]) < shortest:
                msg = f"{batch.column('uri')[i]} is {len(waves[i]) / self.m.features.sample_rate * 1000:.1f} ms long; at least {shortest / self.m.features.sample_rate * 1000:.0f} ms (one latent frame) is needed"
                _set_error(errs, i, _too_short(msg), "validate")
                good.remove(i)
        latents = self._encode([waves[i] for i in good], [batch.column("uri")[i].as_py() for i in good])
        results: list[Latents | None] = [None] * n
        for i, lat in zip(good, latents):
            if isinstance(lat, Exception):
                _set_error(errs, i, lat, "encode")
            else:
                results[i] = lat
        return self._rows(batch, results, errs)

    def _encode(self, waves: list[np.ndarray], uris: list[str]) -> list[Latents | Exception]:
        """Encode together; if the batch fails, clip by clip so one bad clip fails alone."""
        try:
            return encode_many(self.m, waves)  # type: ignore[return-value]
        except Exception:
            out: list[Latents | Exception] = []
            for w, uri in zip(waves, uris):
                try:
                    out += encode_many(self.m, [w])
                except Exception as e:
                    out.append(type(e)(f"{uri}: {e}") if isinstance(e, ValueError) else e)
            return out

    def _rows(self, batch: pa.Table, results: list[Latents | None], errs: dict[str, list]) -> pa.Table:
        """One wide row per clip: clip, frame and segment columns; the writer splits them."""
        cfg, m = self.cfg, self.m
        rate = m.latent_rate
        half, gap = cfg.novelty_frames(rate)
        frames_type = pa.float16() if cfg.dtype == "float16" else pa.float32()
        cols: dict[str, list] = {
            k: []
            for k in (
                "n_frames",
                "mean",
                "logvar",
                "energy",
                "novelty",
                "embedding",
                "energy_mean",
                "active_fraction",
                "seg_start",
                "seg_end",
                "seg_score",
                "seg_active",
                "seg_embedding",
            )
        }
        durations = batch.column("duration_s").to_pylist()
        for lat, duration in zip(results, durations):
            if lat is None:
                for k in cols:
                    cols[k].append(None)
                continue
            segs, curve = segment(
                with_activity(lat.mean, lat.energy, cfg.activity_weight), half, gap, cfg.novelty_threshold
            )
            active = lat.energy > max(SILENCE_FLOOR, float(lat.energy.max()) - SILENCE_BELOW_PEAK)
            cols["n_frames"].append(len(lat.mean))
            cols["mean"].append(lat.mean)
            cols["logvar"].append(lat.logvar if cfg.keep_logvar else None)
            cols["energy"].append(lat.energy)
            cols["novelty"].append(curve)
            cols["embedding"].append(scene_embedding(lat.mean))
            cols["energy_mean"].append(float(lat.energy.mean()))
            cols["active_fraction"].append(float(active.mean()))
            cols["seg_start"].append(np.array([_edge_s(m, s.start, len(lat.mean), duration) for s in segs]))
            cols["seg_end"].append(np.array([_edge_s(m, s.stop, len(lat.mean), duration) for s in segs]))
            cols["seg_score"].append(np.array([s.score for s in segs], np.float32))
            cols["seg_active"].append(np.array([active[s.start : s.stop].mean() for s in segs], np.float32))
            cols["seg_embedding"].append(np.stack([lat.mean[s.start : s.stop].mean(0) for s in segs]))
        out = {
            k: batch.column(k)
            for k in ("id", "uri", "label", "split", "sample_rate", "channels", "format", "duration_s", "source_bytes")
        }
        out["start_s"] = pa.array([float(timestamps_s(m, 1)[0])] * batch.num_rows, pa.float64())
        out["frame_rate"] = pa.array([rate] * batch.num_rows, pa.float64())
        nulls = lambda k: [v if v is not None else np.zeros(0) for v in cols[k]]  # noqa: E731
        valid = pa.array([v is None for v in cols["n_frames"]])
        out["n_frames"] = pa.array(cols["n_frames"], pa.int32())
        out["mean"] = matrix_array(cols["mean"], frames_type)
        out["logvar"] = matrix_array(cols["logvar"], frames_type)
        for k in ("energy", "novelty", "embedding", "seg_score", "seg_active"):
            out[k] = _mask(list_array(nulls(k)), valid)
        for k in ("seg_start", "seg_end"):
            out[k] = _mask(list_array(nulls(k), pa.float64()), valid)
        out["energy_mean"] = pa.array(cols["energy_mean"], pa.float32())
        out["active_fraction"] = pa.array(cols["active_fraction"], pa.float32())
        out["seg_embedding"] = matrix_array(cols["seg_embedding"], pa.float32())
        out.update({k: pa.array(v, pa.string()) for k, v in errs.items()})
        return pa.table(out)


class CompressBatch(EncodeBatch):
    """Ray Data actor: like EncodeBatch, but each clip becomes int8 codes plus what decoding needs."""

    def _rows(self, batch: pa.Table, results: list[Latents | None], errs: dict[str, list]) -> pa.Table:
        codes = [quantize(lat.mean) if lat is not None else None for lat in results]
        lengths = pa.compute.list_value_length(batch.column("wave")).to_pylist()  # samples at the model rate
        out = {k: batch.column(k) for k in ("id", "uri", "duration_s", "sample_rate", "channels", "source_bytes")}
        out["num_samples"] = pa.array([n if c else None for n, c in zip(lengths, codes)], pa.int64())
        out["n_frames"] = pa.array([c.n_frames if c else None for c in codes], pa.int32())
        out["scale"] = pa.array([c.scale.tolist() if c else None for c in codes], pa.list_(pa.float16()))
        out["codes"] = pa.array([c.codes if c else None for c in codes], pa.binary())
        out.update({k: pa.array(v, pa.string()) for k, v in errs.items()})
        return pa.table(out)


def split_codes(batch: pa.Table, dtype: str) -> dict[str, pa.Table]:
    """A batch of compressed rows -> the codes and errors tables."""
    ok = pa.compute.is_null(batch.column("error_stage"))
    return {
        "codes": batch.filter(ok).select(CODES.names).cast(CODES),
        "errors": _errors(batch.filter(pa.compute.invert(ok))),
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


def _mask(arr: pa.ListArray, null: pa.Array) -> pa.ListArray:
    return pa.ListArray.from_arrays(arr.offsets, arr.values, mask=null)


def _too_short(msg: str) -> Exception:
    from raydist.audio.errors import TooShortError

    return TooShortError(msg)


def _edge_s(m: LoadedModel, j: int, n_frames: int, duration: float) -> float:
    """Segment edge time: 0 at the start, the clip's duration at the end, else boundary_s."""
    return 0.0 if j == 0 else duration if j >= n_frames else boundary_s(m, j)


def boundary_s(m: LoadedModel, j: int) -> float:
    """Time of the boundary before latent frame j: between its first mel frame and the one before."""
    return max(0.0, (j * m.vae.cfg.downsample - 0.5) * m.features.hop_length / m.features.sample_rate)


# ---------------------------------------------------------------- write (CPU tasks)


def split_tables(batch: pa.Table, dtype: str) -> dict[str, pa.Table]:
    """A batch of wide result rows -> the four output tables."""
    ok = pa.compute.is_null(batch.column("error_stage"))
    good, bad = batch.filter(ok), batch.filter(pa.compute.invert(ok))
    frames = good.select(frames_schema(dtype).names)
    seg_counts = (
        pa.compute.list_value_length(good.column("seg_start")).to_numpy(zero_copy_only=False)
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
            "start_s": pa.compute.list_flatten(good.column("seg_start")),
            "end_s": pa.compute.list_flatten(good.column("seg_end")),
            "boundary_score": pa.compute.list_flatten(good.column("seg_score")),
            "active_fraction": pa.compute.list_flatten(good.column("seg_active")),
            "embedding": pa.compute.list_flatten(good.column("seg_embedding")),
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
    good = batch.filter(pa.compute.is_null(batch.column("error_stage")))
    pcm16 = pa.compute.multiply(
        pa.compute.multiply(good.column("duration_s"), good.column("sample_rate").cast(pa.float64())),
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
            "audio_s": [float(pa.compute.sum(good.column("duration_s")).as_py() or 0.0)],
            "source_bytes": [int(pa.compute.sum(good.column("source_bytes")).as_py() or 0)],
            "pcm16_bytes": [2.0 * float(pa.compute.sum(pcm16).as_py() or 0.0)],
            "payload_bytes": [payload],
            "ids": [ids],
        }
    )

"""The embedding pipeline's stage functions. Each takes and returns a pyarrow Table (one Ray Data
batch) and runs without Ray, so tests call them on hand-built tables.

decode_batch  (CPU tasks)     inputs -> mono waveforms at the model rate, or error rows
EncodeBatch   (actor pool)    waveforms -> latents, clip features, segments, or error rows
CompressBatch (actor pool)    waveforms -> int8 codes, or error rows

The writer tasks that follow them live in `raydist.pipeline.write`, which does not import torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raydist.audio import AudioError, decode
from raydist.codec import quantize
from raydist.config import EmbedConfig
from raydist.embedding import Latents, boundary_s, encode_many, min_samples, scene_embedding, timestamps_s
from raydist.model.checkpoint import LoadedModel, load_model
from raydist.schema import list_array, matrix_array
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
            starts = np.array([s.start for s in segs])
            lengths = np.diff(np.append(starts, len(lat.mean)))  # segments tile the clip, none empty
            cols["seg_start"].append(np.array([_edge_s(m, s.start, len(lat.mean), duration) for s in segs]))
            cols["seg_end"].append(np.array([_edge_s(m, s.stop, len(lat.mean), duration) for s in segs]))
            cols["seg_score"].append(np.array([s.score for s in segs], np.float32))
            cols["seg_active"].append((np.add.reduceat(active.astype(np.float32), starts) / lengths).astype(np.float32))
            cols["seg_embedding"].append(np.add.reduceat(lat.mean, starts, axis=0, dtype=np.float64) / lengths[:, None])
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
        lengths = pc.list_value_length(batch.column("wave")).to_pylist()  # samples at the model rate
        out = {k: batch.column(k) for k in ("id", "uri", "duration_s", "sample_rate", "channels", "source_bytes")}
        out["num_samples"] = pa.array([n if c else None for n, c in zip(lengths, codes)], pa.int64())
        out["n_frames"] = pa.array([c.n_frames if c else None for c in codes], pa.int32())
        out["scale"] = pa.array([c.scale.tolist() if c else None for c in codes], pa.list_(pa.float16()))
        out["codes"] = pa.array([c.codes if c else None for c in codes], pa.binary())
        out.update({k: pa.array(v, pa.string()) for k, v in errs.items()})
        return pa.table(out)


def _mask(arr: pa.ListArray, null: pa.Array) -> pa.ListArray:
    return pa.ListArray.from_arrays(arr.offsets, arr.values, mask=null)


def _too_short(msg: str) -> Exception:
    from raydist.audio.errors import TooShortError

    return TooShortError(msg)


def _edge_s(m: LoadedModel, j: int, n_frames: int, duration: float) -> float:
    """Segment edge time: 0 at the start, the clip's duration at the end, else boundary_s."""
    return 0.0 if j == 0 else duration if j >= n_frames else boundary_s(j, m.vae.cfg.downsample, m.features)

"""`raydist embed`: the runner with the embedding spec. `EncodeBatch` (actor pool) turns decoded
clips into latents, clip features and segments (or error rows), one wide row per clip;
`split_tables` (writer tasks) cuts those rows into frames/, clips/, events/, segments/ and
errors/.

This module imports no torch at import time: writer tasks unpickle `split_tables` from here, and
a torch import in each writer process cost more CPU than the writing itself. The actor imports
the model in its constructor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raydist.audio.errors import TooShortError
from raydist.config import OutputConfig, ResourceConfig, SegmentConfig
from raydist.embedding.features import clip_features
from raydist.io.schema import CLIPS, ERRORS, EVENTS, SEGMENTS, frames_schema, list_array, matrix_array
from raydist.pipeline.decode import ERROR_COLUMNS, set_error, waves
from raydist.pipeline.runner import RunSummary, Spec, run_pipeline

if TYPE_CHECKING:
    from raydist.embedding.encode import Latents

CLIP_COLUMNS = ("id", "uri", "label", "split", "sample_rate", "channels", "format", "duration_s", "source_bytes")


class EncodeBatch:
    """Ray Data actor: load the model once, then encode batches of decoded clips into wide rows."""

    def __init__(
        self,
        model_uri: str,
        configs: dict[str, Any],
        storage_options: dict | None = None,
        device: str = "cpu",
        loaded: Any = None,
    ):
        from raydist.embedding import encode
        from raydist.model.checkpoint import load_model

        self.encode = encode
        self.output = OutputConfig.from_dict(configs.get("output_config", {}))
        self.segments = SegmentConfig.from_dict(configs.get("segment_config", {}))
        self.device = device
        # `loaded`: a model already in memory (the server's embed and compress share one)
        self.m = loaded or load_model(model_uri, device=device, storage_options=storage_options)
        self.shortest, self.rate = encode.min_samples(self.m), self.m.features.sample_rate

    def _many(self, clips: list[np.ndarray]) -> list:
        return self.encode.encode_many(self.m, clips)

    def _timing(self, lat: Latents) -> tuple[float, float]:
        """(centre of the first frame in seconds, frames per second) of a clip's frames."""
        return float(self.encode.timestamps_s(self.m, 1)[0]), self.m.latent_rate

    def _features(self, lat: Latents, duration_s: float):
        m = self.m
        return clip_features(
            lat.mean,
            lat.energy,
            duration_s,
            self.segments,
            m.vae.cfg.downsample,
            m.features,
            lat.cepstra,
            lat.early,
            mel_energy=lat.mel_energy,
            bands=lat.bands,
        )

    def __call__(self, batch: pa.Table) -> pa.Table:
        n = batch.num_rows
        errs = {k: batch.column(k).to_pylist() for k in ERROR_COLUMNS}
        clips = waves(batch.column("wave"))
        good = [i for i in range(n) if errs["error_stage"][i] is None]
        shortest, rate = self.shortest, self.rate
        for i in list(good):
            if len(clips[i]) < shortest:
                msg = (
                    f"{batch.column('uri')[i]} is {len(clips[i]) / rate * 1000:.1f} ms long; at least "
                    f"{shortest / rate * 1000:.0f} ms (one latent frame) is needed"
                )
                set_error(errs, i, TooShortError(msg), "validate")
                good.remove(i)
        latents = self._encode([clips[i] for i in good], [batch.column("uri")[i].as_py() for i in good])
        results: list[Latents | None] = [None] * n
        for i, lat in zip(good, latents):
            if isinstance(lat, Exception):
                set_error(errs, i, lat, "encode")
            else:
                results[i] = lat
        return self._rows(batch, results, errs)

    def _encode(self, clips: list[np.ndarray], uris: list[str]) -> list[Latents | Exception]:
        """Encode together; if the batch fails, clip by clip so one bad clip fails alone."""
        try:
            return self._many(clips)
        except Exception:
            out: list[Latents | Exception] = []
            for w, uri in zip(clips, uris):
                try:
                    out += self._many([w])
                except Exception as e:
                    out.append(type(e)(f"{uri}: {e}") if isinstance(e, ValueError) else e)
            return out

    def _rows(self, batch: pa.Table, results: list[Latents | None], errs: dict[str, list]) -> pa.Table:
        """One wide row per clip: clip, frame and segment columns; `split_tables` splits them."""
        frames_type = pa.float16() if self.output.dtype == "float16" else pa.float32()
        durations = batch.column("duration_s").to_pylist()
        feats = [None if lat is None else self._features(lat, d) for lat, d in zip(results, durations)]
        timing = [(None, None) if lat is None else self._timing(lat) for lat in results]
        out: dict[str, Any] = {k: batch.column(k) for k in CLIP_COLUMNS}
        out["start_s"] = pa.array([t[0] for t in timing], pa.float64())
        out["frame_rate"] = pa.array([t[1] for t in timing], pa.float64())
        out["n_frames"] = pa.array([None if lat is None else len(lat.mean) for lat in results], pa.int32())
        out["mean"] = matrix_array([None if lat is None else lat.mean for lat in results], frames_type)
        keep = self.output.keep_logvar
        out["logvar"] = matrix_array([lat.logvar if lat is not None and keep else None for lat in results], frames_type)
        null = pa.array([lat is None for lat in results])
        out["energy"] = _masked([None if lat is None else lat.energy for lat in results], null)
        for k in ("novelty", "embedding"):
            out[k] = _masked([None if f is None else getattr(f, k) for f in feats], null)
        out["energy_mean"] = pa.array([None if f is None else f.energy_mean for f in feats], pa.float32())
        out["active_fraction"] = pa.array([None if f is None else f.active_fraction for f in feats], pa.float32())
        for level, prefix in (("events", "ev"), ("segments", "seg")):
            regions = [None if f is None else getattr(f, level) for f in feats]
            for k in ("start", "end"):
                out[f"{prefix}_{k}"] = _masked(
                    [None if r is None else getattr(r, k) for r in regions], null, pa.float64()
                )
            for k in ("score", "active"):
                out[f"{prefix}_{k}"] = _masked([None if r is None else getattr(r, k) for r in regions], null)
            out[f"{prefix}_embedding"] = matrix_array(
                [None if r is None else r.embedding for r in regions], pa.float32()
            )
        out.update({k: pa.array(v, pa.string()) for k, v in errs.items()})
        return pa.table(out)


class HearEncodeBatch(EncodeBatch):
    """Ray Data actor for a HEAR-API encoder (`raydist embed --encoder MODULE`): the module's scene
    embedding is the clip embedding, its timestamp embeddings the frames; events and segments
    come from those frames, with the audio's own power around each timestamp as the activity.
    What only the VAE gives (log-variances, its log-mel cepstra, codes) is not there."""

    def __init__(self, model_uri: str, configs: dict[str, Any], storage_options: dict | None = None, device="cpu"):
        from raydist.embedding.encoders import HearEncoder

        self.output = OutputConfig.from_dict(configs.get("output_config", {}))
        self.segments = SegmentConfig.from_dict(configs.get("segment_config", {}))
        self.device = device
        self.hear = HearEncoder(model_uri, device)
        self.shortest, self.rate = 1, self.hear.sample_rate

    def _many(self, clips: list[np.ndarray]) -> list:
        from raydist.embedding.encode import Latents
        from raydist.embedding.encoders import frame_energy

        out = []
        for wave, e in zip(clips, self.hear.encode(clips)):
            if len(e.times_s) == 0 or e.frames.ndim != 2 or len(e.frames) != len(e.times_s):
                raise ValueError(f"the encoder gave {e.frames.shape} embeddings for {len(e.times_s)} timestamps")
            lat = Latents(e.frames, None, frame_energy(wave, e.times_s, self.rate), None, None)  # type: ignore[arg-type]
            lat.scene, lat.times_s = e.scene, e.times_s  # type: ignore[attr-defined]
            out.append(lat)
        return out

    def _timing(self, lat) -> tuple[float, float]:
        t = lat.times_s
        return float(t[0]), float(1.0 / np.median(np.diff(t))) if len(t) > 1 else 0.0

    def _features(self, lat, duration_s: float):
        start, rate = self._timing(lat)
        f = clip_features(lat.mean, lat.energy, duration_s, self.segments, 0, None, clock=(rate or 1.0, start))
        f.embedding = lat.scene
        return f


def _masked(values: list[np.ndarray | None], null: pa.Array, type_: pa.DataType = pa.float32()) -> pa.ListArray:
    """1-D arrays (None for failed clips) -> list<type_> with nulls where `null` is true."""
    arr = list_array([v if v is not None else np.zeros(0) for v in values], type_)
    return pa.ListArray.from_arrays(arr.offsets, arr.values, mask=null)


def error_table(bad: pa.Table) -> pa.Table:
    """Failed wide rows -> the errors table (shared by every spec)."""
    return pa.table(
        {
            "id": bad.column("id"),
            "uri": bad.column("uri"),
            "stage": bad.column("error_stage"),
            "error_type": bad.column("error_type"),
            "message": bad.column("error_message"),
        }
    ).cast(ERRORS)


def split_tables(batch: pa.Table, configs: dict[str, dict]) -> dict[str, pa.Table]:
    """A batch of wide result rows -> frames, clips, events, segments and errors tables."""
    dtype = OutputConfig.from_dict(configs.get("output_config", {})).dtype
    ok = pc.is_null(batch.column("error_stage"))
    good, bad = batch.filter(ok), batch.filter(pc.invert(ok))
    schema = frames_schema(dtype)
    if "encoder" in configs:  # another team's encoder: no log-variances to write
        schema = schema.remove(schema.get_field_index("logvar"))
    frames = good.select(schema.names)
    counts = {p: _lengths(good, f"{p}_start") for p in ("ev", "seg")}
    clip_cols = [c for c in CLIPS.names if c not in ("n_segments", "n_events")]
    clips = pa.table(
        {
            **{k: good.column(k) for k in clip_cols},
            "n_segments": pa.array(counts["seg"], pa.int32()),
            "n_events": pa.array(counts["ev"], pa.int32()),
        }
    )
    segments = _regions_table(good, "seg", "segment", counts["seg"])
    events = _regions_table(good, "ev", "event", counts["ev"])
    return {
        "frames": frames.cast(schema),
        "clips": clips.cast(CLIPS),
        "events": events.cast(EVENTS),
        "segments": segments.cast(SEGMENTS),
        "errors": error_table(bad),
    }


def _lengths(table: pa.Table, column: str) -> np.ndarray:
    if not table.num_rows:
        return np.zeros(0, int)
    return pc.list_value_length(table.column(column)).to_numpy(zero_copy_only=False)


def _regions_table(good: pa.Table, prefix: str, index: str, counts: np.ndarray) -> pa.Table:
    """One row per region (event or segment) from the wide rows' list columns."""
    ids = np.repeat(np.array(good.column("id").to_pylist(), dtype=object), counts)
    order = np.concatenate([np.arange(c) for c in counts]) if len(counts) else np.zeros(0)
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            index: pa.array(order, pa.int32()),
            "start_s": pc.list_flatten(good.column(f"{prefix}_start")),
            "end_s": pc.list_flatten(good.column(f"{prefix}_end")),
            "boundary_score": pc.list_flatten(good.column(f"{prefix}_score")),
            "active_fraction": pc.list_flatten(good.column(f"{prefix}_active")),
            "embedding": pc.list_flatten(good.column(f"{prefix}_embedding")),
        }
    )


EMBED = Spec("embed", EncodeBatch, split_tables, ("clips", "errors"))
EMBED_HEAR = Spec("embed", HearEncodeBatch, split_tables, ("clips", "errors"))


def encoder_actor(model_uri: str) -> type:
    """The actor class for an encoder string: a checkpoint's, or `hear:MODULE[|WEIGHTS]`."""
    return HearEncodeBatch if model_uri.startswith("hear:") else EncodeBatch


def embed(
    inputs: list[str],
    out: str,
    model_uri: str,
    resources: ResourceConfig = ResourceConfig(),
    output: OutputConfig = OutputConfig(),
    segments: SegmentConfig = SegmentConfig(),
    retry_errors: bool = False,
    storage_options: dict[str, Any] | None = None,
    progress: bool = True,
) -> RunSummary:
    """Embed `inputs` into `out` (Ray must be initialised). Safe to rerun: it finishes an
    interrupted commit, then processes only inputs not yet committed."""
    configs = {"output_config": output.to_dict(), "segment_config": segments.to_dict()}
    spec = EMBED_HEAR if encoder_actor(model_uri) is HearEncodeBatch else EMBED
    return run_pipeline(spec, inputs, out, model_uri, resources, configs, retry_errors, storage_options, progress)


__all__ = ["EMBED", "EncodeBatch", "HearEncodeBatch", "embed", "encoder_actor", "error_table", "split_tables"]

"""The output tables' schemas, defined once: the writer, the reader, the docs and the tests use
these. Vectors are plain Arrow lists (not Ray's tensor extension, not fixed-size lists), so
pyarrow, pandas, polars and duckdb read them with no raydist or Ray installed.

Layout of an embedding output directory:
    (each table holds one file per commit)
    frames/part-*.parquet    one row per clip: the latent sequence and per-frame curves
    clips/part-*.parquet     one row per clip: clip-level (classification) features
    events/part-*.parquet    one row per event: where sound starts and stops (schema 2 on)
    segments/part-*.parquet  one row per source segment: regions of one source, tiling the clip
    errors/part-*.parquet    one row per input that could not be processed
    codes/part-*.parquet     (raydist compress) one row per clip: quantised latents + what decoding needs
    _log/<n>.json            the commit log: each commit's files and counts (raydist.io.store)
    _runs/<run>.json         one record per run: state, heartbeat, model hash, configs, counts
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

SCHEMA_VERSION = "3"  # 3: clips.embedding adds the first-stage features; 2: events/ added, segments/ are
# source segments (1: segments were events)
TABLES = ("frames", "clips", "events", "segments", "errors", "codes")


def _f(name: str, type_: pa.DataType, doc: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"doc": doc})


def frames_schema(dtype: str = "float16") -> pa.Schema:
    value = pa.float16() if dtype == "float16" else pa.float32()
    return pa.schema(
        [
            _f("id", pa.string(), "input id", nullable=False),
            _f("start_s", pa.float64(), "centre time of the first latent frame, seconds"),
            _f("frame_rate", pa.float64(), "latent frames per second"),
            _f("n_frames", pa.int32(), "latent frames"),
            _f("mean", pa.list_(pa.list_(value)), "latent means, n_frames x latent_dim"),
            _f("logvar", pa.list_(pa.list_(value)), "latent log-variances (null unless requested)"),
            _f("energy", pa.list_(pa.float32()), "mean log-mel per latent frame (activity)"),
            _f(
                "novelty",
                pa.list_(pa.float32()),
                "novelty curve (latents plus activity): boundary strength before each frame",
            ),
        ]
    )


CLIPS = pa.schema(
    [
        _f("id", pa.string(), "input id", nullable=False),
        _f("uri", pa.string(), "input URI"),
        _f("label", pa.string(), "label from the manifest, if any"),
        _f("split", pa.string(), "split from the manifest, if any"),
        _f("duration_s", pa.float64(), "duration of the source audio, seconds"),
        _f("sample_rate", pa.int32(), "source sample rate, Hz"),
        _f("channels", pa.int32(), "source channels (mixed to mono for the model)"),
        _f("format", pa.string(), "source container, e.g. WAV, FLAC"),
        _f("n_frames", pa.int32(), "latent frames"),
        _f(
            "embedding",
            pa.list_(pa.float32()),
            "clip embedding (2 x latent dims + 2 x encoder channels): mean then std over time of the latent "
            "means (the part the invariance term trains), then of the encoder's first-stage features",
        ),
        _f("energy_mean", pa.float32(), "mean log-mel energy, nats (loudness)"),
        _f(
            "active_fraction",
            pa.float32(),
            "share of latent frames above the clip's silence threshold (30 dB under its loudest)",
        ),
        _f("n_segments", pa.int32(), "source segments (rows in segments/)"),
        _f("n_events", pa.int32(), "events (rows in events/); null in runs of schema 1"),
    ]
)

EVENTS = pa.schema(
    [
        _f("id", pa.string(), "input id", nullable=False),
        _f("event", pa.int32(), "event index within the clip"),
        _f("start_s", pa.float64(), "where the sound starts (or changes suddenly), seconds"),
        _f("end_s", pa.float64(), "where it stops, seconds"),
        _f("boundary_score", pa.float32(), "event-level novelty at the start (0 at the clip's start)"),
        _f("active_fraction", pa.float32(), "share of the event's frames above the silence threshold (>= 0.5)"),
        _f("embedding", pa.list_(pa.float32()), "mean latent over the event"),
    ]
)

SEGMENTS = pa.schema(
    [
        _f("id", pa.string(), "input id", nullable=False),
        _f("segment", pa.int32(), "segment index within the clip"),
        _f(
            "start_s",
            pa.float64(),
            "segment start, seconds (segments tile the clip; after a pause, the new source's onset)",
        ),
        _f("end_s", pa.float64(), "segment end, seconds"),
        _f(
            "boundary_score",
            pa.float32(),
            "Ward distance to the previous segment over standardised level-free latents and denoised cepstra "
            "(0 for the first)",
        ),
        _f("active_fraction", pa.float32(), "share of the segment's frames that are sound (above silence and noise)"),
        _f("embedding", pa.list_(pa.float32()), "mean latent over the segment's sound frames (all frames if none)"),
    ]
)

ERRORS = pa.schema(
    [
        _f("id", pa.string(), "input id", nullable=False),
        _f("uri", pa.string(), "input URI"),
        _f("stage", pa.string(), "read | decode | validate | encode"),
        _f("error_type", pa.string(), "exception class"),
        _f("message", pa.string(), "what went wrong, naming the input"),
    ]
)


CODES = pa.schema(
    [
        _f("id", pa.string(), "input id", nullable=False),
        _f("uri", pa.string(), "input URI"),
        _f("duration_s", pa.float64(), "duration of the source audio, seconds"),
        _f("sample_rate", pa.int32(), "source sample rate, Hz"),
        _f("channels", pa.int32(), "source channels"),
        _f("num_samples", pa.int64(), "samples at the model rate (decoded length)"),
        _f("n_frames", pa.int32(), "latent frames"),
        _f("scale", pa.list_(pa.float16()), "per-dimension scale: latent = code / 127 * scale"),
        _f("codes", pa.binary(), "int8 codes, n_frames x latent_dim, row-major"),
        _f("source_bytes", pa.int64(), "size of the source file"),
    ]
)


def schema_for(table: str, dtype: str = "float16") -> pa.Schema:
    schemas = {"clips": CLIPS, "events": EVENTS, "segments": SEGMENTS, "errors": ERRORS, "codes": CODES}
    return frames_schema(dtype) if table == "frames" else schemas[table]


def list_array(arrays: list[np.ndarray], type_: pa.DataType = pa.float32()) -> pa.Array:
    """1-D arrays -> list<type_> without a Python loop over values."""
    offsets = np.zeros(len(arrays) + 1, np.int32)
    np.cumsum([len(a) for a in arrays], out=offsets[1:])
    values = np.concatenate(arrays) if arrays else np.zeros(0)
    return pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(values.astype(type_.to_pandas_dtype(), copy=False), type_)
    )


def matrix_array(mats: list[np.ndarray | None], type_: pa.DataType) -> pa.Array:
    """(L_i, D) arrays (None -> null) -> list<list<type_>>: rows of each matrix as inner lists."""
    rows = [m if m is not None else np.zeros((0, 0)) for m in mats]
    inner = (
        list_array([r for m in rows for r in m], type_) if any(len(m) for m in rows) else pa.array([], pa.list_(type_))
    )
    offsets = np.zeros(len(rows) + 1, np.int32)
    np.cumsum([len(m) for m in rows], out=offsets[1:])
    mask = pa.array([m is None for m in mats])
    return pa.ListArray.from_arrays(pa.array(offsets), inner, mask=mask)


def to_matrix(value: list | None) -> np.ndarray:
    """Read back one list<list<...>> cell as an (L, D) float32 array."""
    return np.asarray(value if value is not None else [], dtype=np.float32)


def markdown(table: str) -> str:
    """The table's columns as a Markdown table (name, Arrow type, what it holds): docs/outputs.md."""
    rows = ["| column | type | what |", "|---|---|---|"]
    for field in schema_for(table):
        doc = (field.metadata or {}).get(b"doc", b"").decode()
        rows.append(f"| `{field.name}` | `{field.type}` | {doc} |")
    return "\n".join(rows)

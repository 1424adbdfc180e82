"""Build and update the vector index of an embedding output.

    build_index("emb/", "idx/")            # clips; again after new commits: adds exactly their rows
    build_index("emb/", "idx/", level="segments")

The index folder holds the LanceDB table `rows` and `raydist-index.json`: the output it indexes,
the level, the model (its VAE's sha256: queries encoded by another VAE are refused), the commits
it holds, and the per-dimension mean and std (of the first build's rows) that standardise every
vector before cosine distance, so that no group of dimensions (latent means against first-stage
features) outweighs the rest by its scale alone.

Vectors are searched exhaustively until the table holds `ANN_MIN_ROWS`; from then on an IVF-PQ
index (LanceDB's disk-based ANN index) is built, and queries re-rank its candidates by exact
distance. `optimize()` folds later rows into it; rows not yet indexed are still searched
exhaustively, so results never miss new rows.
"""

from __future__ import annotations

import json
import math
import posixpath
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from raydist.errors import RaydistError, UsageError
from raydist.io.fs import put_whole, url_to_fs
from raydist.io.store import RunStore, _read_moving

LEVELS = ("clips", "segments", "events")
META = "raydist-index.json"
TABLE = "rows"
ANN_MIN_ROWS = 50_000  # below this, exhaustive search is exact and fast enough (about 10 ms here)
BATCH_ROWS = 50_000  # rows per add: bounds the memory of a build whatever the corpus size
CLIP_META = ("uri", "label", "split", "duration_s")


class SearchError(RaydistError):
    """An index that cannot be built, read or queried as asked."""


@dataclass
class IndexMeta:
    source: str  # the embedding output indexed
    level: str  # clips, segments or events
    model: dict[str, Any]  # uri, sha256, vae_sha256 of the model that made the rows
    dim: int
    mean: list[float]
    std: list[float]
    commits: list[int] = field(default_factory=list)  # log sequence numbers indexed
    rows: int = 0
    ann: dict[str, Any] | None = None  # the ANN index's settings, once built
    configs: dict[str, Any] = field(default_factory=dict)  # the run's output and segment configs
    version: int = 1

    def standardise(self, x: np.ndarray) -> np.ndarray:
        """(N, D) vectors -> the indexed space; dims with no spread keep their centred value."""
        return ((x - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)


def lance_options(storage_options: dict[str, Any] | None) -> dict[str, str]:
    """fsspec-style storage options -> LanceDB's (object_store) for an S3-compatible endpoint.
    Credentials still come from the environment."""
    import os

    out: dict[str, str] = {}
    endpoint = (storage_options or {}).get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        out["aws_endpoint"] = endpoint
        out["allow_http"] = str(endpoint.startswith("http://")).lower()
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        out["aws_region"] = region
    return out


def connect(idx: str, storage_options: dict[str, Any] | None = None):
    import lancedb

    return lancedb.connect(idx, storage_options=lance_options(storage_options) or None)


def _has_table(db) -> bool:
    listed = db.list_tables()
    return TABLE in getattr(listed, "tables", listed)


def read_meta(idx: str, storage_options: dict[str, Any] | None = None) -> IndexMeta:
    fs, root = url_to_fs(idx, storage_options)
    path = posixpath.join(root.rstrip("/"), META)
    try:
        with fs.open(path, "r") as f:
            return IndexMeta(**json.load(f))
    except FileNotFoundError:
        raise SearchError(
            f"{idx} is not a raydist index (no {META}); build one with `raydist index EMB --out {idx}`"
        ) from None


def write_meta(idx: str, meta: IndexMeta, storage_options: dict[str, Any] | None = None) -> None:
    fs, root = url_to_fs(idx, storage_options)
    fs.makedirs(root, exist_ok=True)
    put_whole(fs, posixpath.join(root.rstrip("/"), META), json.dumps(asdict(meta), indent=1).encode())


def _model_of(store: RunStore, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The model that made these commits (uri, sha256, vae_sha256, and the run's configs); every
    run on one output must have used the same VAE."""
    models = {}
    for run_id in dict.fromkeys(e["run_id"] for e in entries):
        record = store.record(run_id) or {}
        m = record.get("model") or {}
        if "vae_sha256" in m:
            configs = {k: record[k] for k in ("output_config", "segment_config", "encoder") if k in record}
            models[m["vae_sha256"]] = {**{k: m.get(k) for k in ("uri", "sha256", "vae_sha256")}, "configs": configs}
    if len(models) > 1:
        raise SearchError(f"{store.out} holds rows of {len(models)} different models; index one model's output")
    if not models:
        raise SearchError(f"{store.out}: its runs record no model; is it an output of `raydist embed`?")
    return next(iter(models.values()))


def _rows(store: RunStore, entry: dict[str, Any], level: str) -> pa.Table:
    """One commit's rows of `level`, with their clips' metadata, as (id, [segment,] uri, ..., vector)."""
    files = store._located([entry], (level,), skip_rewrites=False)
    if not files:
        return pa.table({})
    rows = pa.concat_tables([_read_moving(store.fs, p) for p in files], promote_options="permissive")
    if level != "clips":
        clip_files = store._located([entry], ("clips",))
        clips = pa.concat_tables([_read_moving(store.fs, p, ["id", *CLIP_META]) for p in clip_files])
        pos = {cid: i for i, cid in enumerate(clips.column("id").to_pylist())}  # (pyarrow joins take no lists)
        meta = clips.take(pa.array([pos[cid] for cid in rows.column("id").to_pylist()], pa.int64()))
        for name in CLIP_META:
            rows = rows.append_column(name, meta.column(name))
    key = {"segments": ["segment", "start_s", "end_s"], "events": ["event", "start_s", "end_s"], "clips": []}[level]
    return rows.select(["id", *key, *CLIP_META, "embedding"])


def _vectors(column: pa.ChunkedArray) -> np.ndarray:
    values = column.combine_chunks()
    n = len(values)
    flat = values.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return flat.reshape(n, -1) if n else np.zeros((0, 0), np.float32)


def build_index(
    emb: str,
    idx: str,
    level: str = "clips",
    storage_options: dict[str, Any] | None = None,
    ann_min_rows: int = ANN_MIN_ROWS,
    progress=None,
) -> dict[str, Any]:
    """Index the committed rows of `emb` at `level` into `idx`, or add the commits made since the
    last call. Returns what it did: rows and commits added, rows in all, whether the ANN index was
    (re)built."""
    if level not in LEVELS:
        raise UsageError(f"--level {level!r}: choose from {', '.join(LEVELS)}")
    store = RunStore(emb, storage_options)
    entries = [e for e in store.log() if e.get("files", {}).get(level)]
    if not store.log():
        raise SearchError(f"{emb} holds no committed rows (is it an output of `raydist embed`?)")
    try:
        meta = read_meta(idx, storage_options)
    except SearchError:
        meta = None
    if meta is not None and (meta.level != level or meta.source.rstrip("/") != emb.rstrip("/")):
        raise UsageError(f"{idx} indexes {meta.level} of {meta.source}; use another --out for {level} of {emb}")
    new = [e for e in entries if meta is None or e.get("seq", 0) not in meta.commits]
    model = _model_of(store, entries)
    model = {k: v for k, v in model.items() if k != "configs"} if meta is not None else model
    if meta is not None and meta.model["vae_sha256"] != model["vae_sha256"]:
        raise SearchError(f"{emb} now holds rows of another model than {idx} was built from; build a new index")
    db, added = connect(idx, storage_options), 0
    for entry in new:
        seq = int(entry.get("seq", 0))
        rows = _rows(store, entry, level)
        if entry.get("kind") == "compact" and meta is not None and rows.num_rows:
            rows = _not_indexed(db, rows, level)  # a compaction's rows: only those of commits the index missed
        if rows.num_rows:
            x = _vectors(rows.column("embedding"))
            if meta is None:
                meta = new_meta(emb, level, model, x)
            added += add_rows(db, meta, rows.drop_columns(["embedding"]), x, seq)
        if meta is not None:  # the commit point of this commit's rows in the index
            meta.commits.append(seq)
            write_meta(idx, meta, storage_options)
        if progress:
            progress(new.index(entry) + 1, len(new))
    if meta is None:
        raise SearchError(f"{emb} holds no committed {level} rows")
    rebuilt = update_ann(db, meta, ann_min_rows) if added else False
    write_meta(idx, meta, storage_options)
    return {"added": added, "commits_added": len(new), "rows": meta.rows, "commits": len(meta.commits), "ann": rebuilt}


def new_meta(source: str, level: str, model: dict[str, Any], x: np.ndarray) -> IndexMeta:
    """The record of a new index whose standardisation is taken from the (N, D) vectors `x`."""
    std = x.std(axis=0)
    configs = model.pop("configs", {})
    return IndexMeta(
        source,
        level,
        model,
        x.shape[1],
        x.mean(axis=0).tolist(),
        np.where(std > 1e-8, std, 1.0).tolist(),
        configs=configs,
    )


def _not_indexed(db, rows: pa.Table, level: str) -> pa.Table:
    """The rows of `rows` whose key (id, and segment or event) the index does not hold."""
    import pyarrow.compute as pc

    if not _has_table(db):
        return rows
    key = {"segments": ["id", "segment"], "events": ["id", "event"], "clips": ["id"]}[level]
    held = db.open_table(TABLE).to_arrow().select(key)
    join = lambda t: pc.binary_join_element_wise(*[pc.cast(t.column(k), pa.string()) for k in key], "\x1f")  # noqa: E731
    return rows.filter(pc.invert(pc.is_in(join(rows), join(held))))


def add_rows(db, meta: IndexMeta, rows: pa.Table, x: np.ndarray, seq: int) -> int:
    """Add `rows` (metadata columns) with their raw vectors `x` as commit `seq`, replacing any rows
    of that commit a build cut short left; returns the rows added."""
    if x.shape[1] != meta.dim:
        raise SearchError(f"{meta.source}: commit {seq} has {x.shape[1]}-dim vectors, the index {meta.dim}")
    if _has_table(db):
        db.open_table(TABLE).delete(f"commit = {seq}")
    for start in range(0, rows.num_rows, BATCH_ROWS):
        part = rows.slice(start, BATCH_ROWS)
        vec = meta.standardise(x[start : start + BATCH_ROWS])
        part = part.append_column("commit", pa.array([seq] * part.num_rows, pa.int64()))
        part = part.append_column("vector", pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), meta.dim))
        if _has_table(db):
            db.open_table(TABLE).add(part)
        else:
            db.create_table(TABLE, data=part)
    meta.rows += rows.num_rows
    return rows.num_rows


def update_ann(db, meta: IndexMeta, ann_min_rows: int = ANN_MIN_ROWS) -> bool:
    """Build the IVF-PQ index once the table is large enough, or fold new rows into it."""
    from lancedb.index import IvfPq

    table = db.open_table(TABLE)
    if meta.rows < ann_min_rows:
        return False
    if meta.ann is None:
        partitions = max(1, int(math.sqrt(meta.rows)))
        sub_vectors = meta.dim // 16 if meta.dim % 16 == 0 else max(1, meta.dim // 8)
        table.create_index(
            "vector", config=IvfPq(distance_type="cosine", num_partitions=partitions, num_sub_vectors=sub_vectors)
        )
        meta.ann = {"type": "IVF_PQ", "partitions": partitions, "sub_vectors": sub_vectors, "built_at_rows": meta.rows}
        return True
    table.optimize()
    return True

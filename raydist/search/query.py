"""Queries against an index: by audio (through the pipeline's own decode and encode functions, so
a corpus file queried as audio finds its own row at distance ≈ 0), by id, or by vectors; and the
filter (`--where`, SQL over the index's columns).

    hits = search_audio("idx/", ["query.wav"], k=10, where="label = 'piano'")
    hits = search_ids("idx/", ["clip-0042"], k=10)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from raydist.errors import UsageError
from raydist.search.index import TABLE, IndexMeta, SearchError, connect, read_meta

REFINE = 10  # with the ANN index: re-rank k x REFINE candidates by exact distance
NPROBES = 32  # IVF partitions visited per query (of about sqrt(rows))
SHOWN = ("id", "segment", "event", "start_s", "end_s", "uri", "label", "split", "duration_s")


class Index:
    """An opened index: its record and its LanceDB table."""

    def __init__(self, idx: str, storage_options: dict[str, Any] | None = None):
        self.uri, self.storage_options = idx, storage_options
        self.meta: IndexMeta = read_meta(idx, storage_options)
        self.table = connect(idx, storage_options).open_table(TABLE)

    def check_where(self, where: str | None) -> None:
        """A malformed filter is a usage error naming what is wrong, before any encoding."""
        if not where:
            return
        try:
            self.table.search().where(where).limit(1).to_arrow()
        except Exception as e:  # noqa: BLE001 - lance's parse and schema errors are ValueError or RuntimeError
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UsageError(f"--where {where!r} is not a valid filter: {first}") from None

    def nearest(
        self, vectors: np.ndarray, k: int, where: str | None = None, nprobes: int = NPROBES, refine: int = REFINE
    ) -> list[pa.Table]:
        """Standardised (N, D) query vectors -> per query the k nearest rows (cosine distance),
        nearest first, with a `distance` column. With the ANN index: `nprobes` partitions are
        visited and k x `refine` candidates re-ranked by exact distance."""
        self.check_where(where)
        out = []
        for q in vectors:
            query = self.table.search(q.tolist()).distance_type("cosine").limit(k)
            if where:
                query = query.where(where, prefilter=True)
            if self.meta.ann:
                query = query.nprobes(nprobes).refine_factor(refine)
            hits = query.to_arrow()
            keep = [c for c in SHOWN if c in hits.column_names]
            distance = pa.compute.max_element_wise(hits.column("_distance"), 0.0)  # float error: never below 0
            hits = hits.select(keep).append_column("distance", distance)
            out.append(hits)
        return out

    def vectors_of(self, ids: list[str]) -> np.ndarray:
        """The indexed (standardised) vectors of `ids`; for segments and events, `ID` is the clip's
        first region and `ID#N` its region N."""
        out = []
        for key in ids:
            where = f"id = {_sql_string(key)}"
            cid, _, n = key.rpartition("#")
            if self.meta.level != "clips":
                region = "segment" if self.meta.level == "segments" else "event"
                if cid and n.isdigit():
                    where = f"id = {_sql_string(cid)} AND {region} = {int(n)}"
                else:
                    where = f"id = {_sql_string(key)} AND {region} = 0"
            rows = self.table.search().where(where).select(["vector"]).limit(1).to_arrow()
            if not rows.num_rows:
                raise SearchError(f"--id {key!r} is not in the index {self.uri}")
            out.append(np.asarray(rows.column("vector")[0].as_py(), np.float32))
        return np.stack(out)


def _sql_string(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def embed_audio(
    sources: list[str], meta: IndexMeta, model_uri: str | None = None, storage_options: dict | None = None
) -> np.ndarray:
    """Audio files (paths or URIs) -> (N, D) raw vectors of the index's level, through the same
    decode_batch, EncodeBatch and split_tables that `raydist embed` runs. Refuses a model whose VAE
    is not the one that made the index; an unreadable file raises with the decoder's message."""
    from raydist.pipeline.decode import decode_batch
    from raydist.pipeline.embed import encoder_actor, split_tables

    configs = meta.configs or {}
    uri = model_uri or meta.model["uri"]
    try:
        encoder = encoder_actor(uri)(uri, configs, storage_options)
    except Exception as e:
        if model_uri:
            raise
        raise SearchError(
            f"the model the index was built from, {meta.model['uri']}, cannot be read from here ({e}); "
            "pass --model CKPT (the same checkpoint, or one that adds a vocoder to its VAE)"
        ) from None
    if hasattr(encoder, "m"):  # raydist's VAE
        key = encoder.m.vae_id
    else:  # a HEAR module: its recorded identity (module, version, weights), of the model just loaded
        from raydist.embedding.encoders import hear_identity

        key = hear_identity(uri, encoder.hear.mod, encoder.hear.model, storage_options).vae_sha256
    if key != meta.model["vae_sha256"]:
        raise SearchError(
            f"{uri} is another model than the one the index was built from "
            f"(VAE {key[:12]} against {meta.model['vae_sha256'][:12]}): its vectors are not comparable"
        )
    n = len(sources)
    batch = pa.table(
        {"id": [str(i) for i in range(n)], "uri": sources, "label": [None] * n, "split": [None] * n},
        schema=pa.schema([(c, pa.string()) for c in ("id", "uri", "label", "split")]),
    )
    tables = split_tables(encoder(decode_batch(batch, encoder.rate, storage_options)), configs)
    for err in tables["errors"].to_pylist():
        raise SearchError(f"cannot embed {err['uri']}: {err['message']} ({err['stage']})")
    rows = tables[meta.level].to_pylist()
    vectors = []
    for i in range(n):
        vector = level_vector([r for r in rows if r["id"] == str(i)])
        if vector is None:
            raise SearchError(f"{sources[i]} has no {meta.level[:-1]} (is it silent?)")
        vectors.append(vector)
    return np.stack(vectors)


def level_vector(rows: list[dict]) -> np.ndarray | None:
    """One clip's rows of the index's level (its clips row, or its segments or events) -> the raw
    query vector: the clip's embedding, or its longest region's; None when it has no region.
    `raydist search --audio` and the server's /search both pick with this."""
    if not rows:
        return None
    best = max(rows, key=lambda r: r.get("end_s", 0) - r.get("start_s", 0))
    return np.asarray(best["embedding"], np.float32)


def search_audio(
    idx: str,
    sources: list[str],
    k: int = 10,
    where: str | None = None,
    model_uri: str | None = None,
    storage_options: dict | None = None,
) -> list[pa.Table]:
    index = Index(idx, storage_options)
    index.check_where(where)
    raw = embed_audio(sources, index.meta, model_uri, storage_options)
    return index.nearest(index.meta.standardise(raw), k, where)


def search_ids(
    idx: str, ids: list[str], k: int = 10, where: str | None = None, storage_options: dict | None = None
) -> list[pa.Table]:
    index = Index(idx, storage_options)
    return index.nearest(index.vectors_of(ids), k, where)

"""Near-duplicate groups of an index: rows whose cosine distance (in the index's standardised
space) is under a threshold are linked, and each connected group is one recording under several
names, encodings, gains or small shifts.

    groups = dedupe("idx/", threshold=0.1)   # group, id, distance to the group's first row

The default threshold is the one `python -m bench search` finds best separates held-out clips'
re-encoded copies (Opus 12 kbps, ±6 dB, a 0.3 s delay) from distinct clips (docs/search.md): the
clip embedding is not invariant to those changes, so no threshold separates them cleanly, and a
stricter one (e.g. 0.03) keeps distinct takes of one word by one voice apart at the cost of
missing most re-encoded copies. tests/test_docs.py checks that this default is the benchmark's.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from raydist.search.index import _vectors
from raydist.search.query import Index

THRESHOLD = 0.14  # = bench.search.threshold(bench/results/search.json)[0]
NEIGHBOURS = 32  # candidates per row; a group larger than this is still joined through its members


def dedupe(idx: str, threshold: float = THRESHOLD, storage_options: dict | None = None, progress=None) -> pa.Table:
    """Groups of two or more rows within `threshold` of each other (transitively), as a table of
    (group, id, distance) where distance is to the group's first row (in index order)."""
    index = Index(idx, storage_options)
    rows = index.table.to_arrow()
    keys = _keys(rows, index.meta.level)
    where = {k: i for i, k in enumerate(keys)}
    vectors = _vectors(rows.column("vector"))
    parent = list(range(len(keys)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, hits in enumerate(_neighbours(index, vectors)):
        for key, dist in zip(_keys(hits, index.meta.level), hits.column("distance").to_pylist()):
            if dist < threshold and key in where:
                a, b = find(i), find(where[key])
                parent[max(a, b)] = min(a, b)  # the group's root is its first row
        if progress:
            progress(i + 1, len(keys))
    groups: dict[int, list[int]] = {}
    for i in range(len(keys)):
        groups.setdefault(find(i), []).append(i)
    out = {"group": [], "id": [], "distance": []}
    for n, (root, members) in enumerate(sorted((r, m) for r, m in groups.items() if len(m) > 1)):
        for i in members:
            out["group"].append(n)
            out["id"].append(keys[i])
            out["distance"].append(float(_cosine(vectors[root], vectors[i])))
    return pa.table(out, schema=pa.schema([("group", pa.int32()), ("id", pa.string()), ("distance", pa.float32())]))


def _neighbours(index: Index, vectors: np.ndarray, chunk: int = 256):
    for start in range(0, len(vectors), chunk):
        yield from index.nearest(vectors[start : start + chunk], NEIGHBOURS)


def _keys(rows: pa.Table, level: str) -> list[str]:
    """Row keys: the id for clips; ID#N for segments and events (what `--id` takes)."""
    ids = rows.column("id").to_pylist()
    if level == "clips":
        return ids
    region = rows.column("segment" if level == "segments" else "event").to_pylist()
    return [f"{i}#{n}" for i, n in zip(ids, region)]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return 1.0 - float(a @ b) / max(1e-12, float(np.linalg.norm(a) * np.linalg.norm(b)))

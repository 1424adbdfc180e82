"""Resolve INPUT arguments (folders, globs, s3:// prefixes, CSV/Parquet manifests) into one
table of inputs: id, uri, label, split. No Ray here.

Ids are stable: a manifest's `id` column, else the URI relative to the folder or prefix it was
listed from. Reruns and joins therefore line up.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from raydist.errors import UsageError
from raydist.io.fs import full_uri, url_to_fs

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf")
MANIFEST_EXTENSIONS = (".csv", ".parquet")
INPUT_SCHEMA = pa.schema([("id", pa.string()), ("uri", pa.string()), ("label", pa.string()), ("split", pa.string())])


class InputError(UsageError):
    """An INPUT argument or manifest is unusable; the message names it (and the row)."""


@dataclass
class Inputs:
    table: pa.Table  # INPUT_SCHEMA
    skipped: dict[str, int] = field(default_factory=dict)  # extension -> files not listed as audio

    def __len__(self) -> int:
        return self.table.num_rows


def read_manifest(uri: str, storage_options: dict[str, Any] | None = None) -> pa.Table:
    """A CSV or Parquet manifest with a `uri` column and optional id, label, split columns.
    Relative URIs are taken relative to the manifest's folder."""
    fs, path = url_to_fs(uri, storage_options)
    try:
        with fs.open(path, "rb") as f:
            table = (
                pq.read_table(f)
                if path.endswith(".parquet")
                else pacsv.read_csv(f, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
            )
    except (OSError, pa.ArrowException) as e:
        raise InputError(f"cannot read manifest {uri}: {e}") from e
    if "uri" not in table.column_names:
        raise InputError(f"manifest {uri} has no 'uri' column (columns: {table.column_names})")
    base = posixpath.dirname(path)
    uris = []
    for i, u in enumerate(table.column("uri").to_pylist()):
        if not isinstance(u, str) or not u.strip():
            raise InputError(f"manifest {uri} row {i + 1}: uri is empty or not text ({u!r})")
        uris.append(u if "://" in u or u.startswith("/") else full_uri(fs, posixpath.join(base, u)))
    cols = {"uri": uris}
    for name in ("id", "label", "split"):
        if name in table.column_names:
            cols[name] = [None if v is None else str(v) for v in table.column(name).to_pylist()]
    ids = cols.get("id") or [_id_from(u, base_uri=None) for u in uris]
    return _table(ids, uris, cols.get("label"), cols.get("split"))


def _id_from(uri: str, base_uri: str | None) -> str:
    if base_uri and uri.startswith(base_uri.rstrip("/") + "/"):
        return uri[len(base_uri.rstrip("/")) + 1 :]
    return uri.split("://", 1)[-1].lstrip("/")


def _table(ids, uris, labels=None, splits=None) -> pa.Table:
    n = len(uris)
    return pa.table(
        {"id": ids, "uri": uris, "label": labels or [None] * n, "split": splits or [None] * n}, schema=INPUT_SCHEMA
    )


def _list(uri: str, storage_options: dict[str, Any] | None, skipped: dict[str, int]) -> pa.Table:
    fs, path = url_to_fs(uri, storage_options)
    if any(ch in path for ch in "*?["):
        paths, base = sorted(fs.glob(path)), None
    elif fs.isdir(path):
        paths, base = sorted(fs.find(path)), path
    elif fs.exists(path):
        paths, base = [path], None
    else:
        raise InputError(f"input {uri} does not exist")
    keep = []
    for p in paths:
        ext = os.path.splitext(p)[1].lower()
        if posixpath.basename(p).startswith("."):
            continue
        if ext in AUDIO_EXTENSIONS or base is None:
            keep.append(p)
        else:
            skipped[ext or "(none)"] = skipped.get(ext or "(none)", 0) + 1
    uris = [full_uri(fs, p) for p in keep]
    ids = [_id_from(p, base) if base else posixpath.basename(p) for p in keep]
    return _table(ids, uris)


def resolve_inputs(inputs: list[str], storage_options: dict[str, Any] | None = None) -> Inputs:
    """Resolve every INPUT into one table; ids must be unique across all of them."""
    if not inputs:
        raise InputError("no INPUT given: pass a folder, a glob, an s3:// prefix or a manifest")
    skipped: dict[str, int] = {}
    tables = []
    for uri in inputs:
        is_manifest = uri.lower().endswith(MANIFEST_EXTENSIONS)
        tables.append(read_manifest(uri, storage_options) if is_manifest else _list(uri, storage_options, skipped))
    table = pa.concat_tables(tables)
    ids = table.column("id").to_pylist()
    for i, v in enumerate(ids):
        if not v:
            raise InputError(f"input row {i + 1} ({table.column('uri')[i]}) has an empty id")
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(v for v in ids if v in seen or seen.add(v))  # type: ignore[func-returns-value]
        raise InputError(f"duplicate input id {dup!r} (row {ids.index(dup) + 1} and later); ids must be unique")
    return Inputs(table, skipped)


# botocore's "standard" retry mode: throttling (503 SlowDown), 5xx and connection errors are
# retried with jittered exponential backoff, up to 10 attempts per request.
S3_RETRIES = {"retries": {"max_attempts": 10, "mode": "standard"}}


def storage_options_for(endpoint_url: str | None) -> dict[str, Any]:
    """fsspec storage options: the retry policy, and an S3-compatible endpoint if given.
    Credentials come from the usual AWS environment, config files or instance profile, never
    from options, so they are never passed to Ray tasks or written anywhere."""
    options: dict[str, Any] = {"config_kwargs": S3_RETRIES}
    if endpoint_url:
        options["endpoint_url"] = endpoint_url
    return options

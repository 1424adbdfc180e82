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
import pyarrow.compute as pc
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
    Relative URIs are taken relative to the manifest's folder. Read whole, in this process: the
    pipeline reads manifests with Ray Data instead (`raydist.pipeline.todo`)."""
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
    return normalise_manifest(table, uri, manifest_base(uri, storage_options), first_row=1)


def manifest_base(uri: str, storage_options: dict[str, Any] | None = None) -> str:
    """The folder relative URIs in manifest `uri` are taken from, as a URI."""
    fs, path = url_to_fs(uri, storage_options)
    return full_uri(fs, posixpath.dirname(path))


def normalise_manifest(table: pa.Table, uri: str, base: str, first_row: int | None = None) -> pa.Table:
    """Rows of manifest `uri` (or a block of them) as INPUT_SCHEMA: relative URIs joined to
    `base`, ids from URIs where there is no id column, every value as text. `first_row`: the
    row number of the table's first row in the manifest, for messages (None: unknown)."""
    if "uri" not in table.column_names:
        raise InputError(f"manifest {uri} has no 'uri' column (columns: {table.column_names})")
    col = table.column("uri")
    if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type) and not pa.types.is_null(col.type):
        raise InputError(f"manifest {uri} {_row(first_row, 0)}: uri is empty or not text ({col[0].as_py()!r})")
    col = col.cast(pa.string())
    bad = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(col), ""), True)
    if pc.any(bad).as_py():
        i = pc.index(bad, True).as_py()
        raise InputError(f"manifest {uri} {_row(first_row, i)}: uri is empty or not text ({col[i].as_py()!r})")
    absolute = pc.or_(pc.match_substring(col, "://"), pc.starts_with(col, "/"))
    uris = pc.if_else(absolute, col, pc.binary_join_element_wise(base.rstrip("/"), col, "/"))
    cols = {"uri": uris}
    for name in ("id", "label", "split"):
        if name in table.column_names:
            cols[name] = _text(table.column(name))
    if "id" not in cols:
        cols["id"] = pc.utf8_ltrim(pc.replace_substring_regex(uris, "^[A-Za-z0-9+.-]*://", ""), "/")
    n = table.num_rows
    out = pa.table({k: cols.get(k, pa.nulls(n, pa.string())) for k in INPUT_SCHEMA.names}, schema=INPUT_SCHEMA)
    if first_row is None:  # a block read by Ray Data: check its ids here (resolve_inputs checks them whole)
        empty = pc.fill_null(pc.equal(out.column("id"), ""), True)
        if pc.any(empty).as_py():
            raise InputError(
                f"manifest {uri}: the row of {out.column('uri')[pc.index(empty, True).as_py()]} has an empty id"
            )
    return out


def _row(first_row: int | None, i: int) -> str:
    return f"row {first_row + i}" if first_row is not None else "a row"


def _text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Any column as text, nulls kept ('1.5' for 1.5, '7' for 7)."""
    if pa.types.is_floating(col.type):  # str(1.5) like the rows were written; 7.0 stays '7.0'
        return pa.chunked_array([pa.array([None if v is None else str(v) for v in col.to_pylist()], pa.string())])
    return col.cast(pa.string())


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
    check_ids(table)
    return Inputs(table, skipped)


def check_ids(table: pa.Table, first_row: int | None = 1) -> None:
    """Every id present and none twice; InputError naming the first that is not."""
    ids = table.column("id")
    empty = pc.fill_null(pc.equal(ids, ""), True)
    if pc.any(empty).as_py():
        i = pc.index(empty, True).as_py()
        raise InputError(f"input {_row(first_row, i)} ({table.column('uri')[i]}) has an empty id")
    counts = pc.value_counts(ids)
    dups = counts.filter(pc.greater(counts.field("counts"), 1))
    if len(dups):
        dup = dups[0]["values"].as_py()
        i = pc.index(ids, dup).as_py()
        raise InputError(f"duplicate input id {dup!r} ({_row(first_row, i)} and later); ids must be unique")


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

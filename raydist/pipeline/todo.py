"""What a run has to do, worked out so the driver holds no list that grows with the corpus or the
output. Like a query planner choosing a broadcast or a shuffle join: while the inputs and the
committed ids are small (up to SMALL each; most runs), the driver reads them and filters with a
set, which costs milliseconds; beyond that, the inputs are a Ray dataset (manifests read by Ray
Data tasks, ids checked by a distributed count) and the inputs already committed are taken out
by an anti-join in Ray Data against the committed files' `id` columns, a hash shuffle over the
cluster (about 10 s of fixed cost on 2 cores, so never for small runs).

    todo = plan(["manifest.parquet"], store, ("clips", "errors"), storage_options)
    todo.rows    # a pa.Table (small) or a materialised ray.data.Dataset (large)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import ray
from pyarrow.fs import FSSpecHandler, PyFileSystem

from raydist.io.commit import FilterJob, filter_file
from raydist.io.fs import url_to_fs
from raydist.io.inputs import (
    INPUT_SCHEMA,
    MANIFEST_EXTENSIONS,
    InputError,
    _list,
    check_ids,
    manifest_base,
    normalise_manifest,
    read_manifest,
)
from raydist.io.store import RunStore

ROWS_PER_BLOCK = 100_000  # inputs per block of a manifest dataset (about 10 MB of text)


SMALL = 1_000_000  # inputs (and committed ids) up to which the driver works them out itself


@dataclass
class Todo:
    rows: pa.Table | ray.data.Dataset  # INPUT_SCHEMA rows still to process
    inputs: int  # all inputs given
    todo: int  # rows of `rows`
    skipped: dict[str, int]  # extension -> files not listed as audio
    retried: set[str]  # ids of `rows` whose only record is an error row (with retry_errors)


def plan(
    inputs: list[str],
    store: RunStore,
    tables: tuple[str, ...],
    storage_options: dict[str, Any] | None = None,
    retry_errors: bool = False,
    small: int | None = None,
) -> Todo:
    """The inputs not committed in any of `tables` (and, with `retry_errors`, which of them have
    an error row). InputError on a bad INPUT, before any audio is touched."""
    small = SMALL if small is None else small
    rows, skipped = input_dataset(inputs, storage_options, small)
    committed = _committed(store)
    if isinstance(rows, pa.Table) and committed <= small:
        given = rows.num_rows
        done = store.done_ids(tables) if committed else set()
        if done:
            rows = rows.filter(pa.array([i not in done for i in rows.column("id").to_pylist()]))
        retried = set()
        if retry_errors and committed:
            retried = store.done_ids(("errors",)) & set(rows.column("id").to_pylist())
        return Todo(rows, given, rows.num_rows, skipped, retried)
    ds = ray.data.from_arrow(rows) if isinstance(rows, pa.Table) else rows
    todo = pending(ds, store, tables)
    retried = committed_among(todo, store, "errors") if retry_errors else set()
    return Todo(todo, ds.count(), todo.count(), skipped, retried)


def _committed(store: RunStore) -> int:
    """Inputs committed so far, from the log's counts (no data file opened); a large number when
    an entry has no counts (outputs of early raydist)."""
    total = 0
    for e in store.log():
        if "counts" in e:
            total += int(e["counts"].get("inputs", 0))
        elif e.get("kind") != "compact":
            return 2**62
    return total


def input_dataset(
    inputs: list[str], storage_options: dict[str, Any] | None = None, small: int = SMALL
) -> tuple[pa.Table | ray.data.Dataset, dict]:
    """The INPUT arguments as INPUT_SCHEMA rows, and {extension: files skipped}: a table when
    every manifest holds at most `small` rows (read here), else a dataset (manifests read by Ray
    Data tasks). Folders, globs and prefixes are listed here. Ids are checked (present, unique)
    before any audio is touched: InputError otherwise."""
    if not inputs:
        raise InputError("no INPUT given: pass a folder, a glob, an s3:// prefix or a manifest")
    ray.data.DataContext.get_current().raise_original_map_exception = True  # InputError, not Ray's wrapper
    skipped: dict[str, int] = {}
    tables, manifests = [], []
    for uri in inputs:
        if not uri.lower().endswith(MANIFEST_EXTENSIONS):
            tables.append(_list(uri, storage_options, skipped))
        elif _manifest_rows(uri, storage_options) <= small:
            tables.append(read_manifest(uri, storage_options))
        else:
            manifests.append(_manifest(uri, storage_options))
    if not manifests:
        table = pa.concat_tables(tables)
        check_ids(table)
        return table, skipped
    parts = manifests + ([ray.data.from_arrow(pa.concat_tables(tables))] if tables else [])
    ds = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
    ds = ds.materialize()  # read once, into the object store: the checks and the join reuse it
    _check_ids(ds)
    return ds, skipped


def _manifest_rows(uri: str, storage_options: dict[str, Any] | None) -> int:
    """Rows of a Parquet manifest (from its footer); for CSV, a bound from its size (>= 20 bytes
    a row). A missing or unreadable manifest counts as small: reading it names the problem."""
    fs, path = url_to_fs(uri, storage_options)
    try:
        if path.endswith(".parquet"):
            with fs.open(path, "rb") as f:
                return pq.ParquetFile(f).metadata.num_rows
        return int(fs.size(path)) // 20
    except (OSError, pa.ArrowException):
        return 0


def _manifest(uri: str, storage_options: dict[str, Any] | None) -> ray.data.Dataset:
    fs, path = url_to_fs(uri, storage_options)
    try:  # fail fast on a missing or headless manifest, before any task runs
        with fs.open(path, "rb") as f:
            names = pq.read_schema(f).names if path.endswith(".parquet") else _csv_header(f)
    except (OSError, pa.ArrowException) as e:
        raise InputError(f"cannot read manifest {uri}: {e}") from e
    if "uri" not in names:
        raise InputError(f"manifest {uri} has no 'uri' column (columns: {names})")
    pafs = PyFileSystem(FSSpecHandler(fs))
    if path.endswith(".parquet"):
        ds = ray.data.read_parquet(path, filesystem=pafs)
    else:
        ds = ray.data.read_csv(
            path, filesystem=pafs, convert_options=pacsv.ConvertOptions(strings_can_be_null=True, column_types={})
        )
    return ds.map_batches(
        normalise_manifest,
        fn_args=(uri, manifest_base(uri, storage_options)),
        batch_format="pyarrow",
        batch_size=ROWS_PER_BLOCK,
        num_cpus=0.5,
    )


def _csv_header(f) -> list[str]:
    return pacsv.open_csv(f).schema.names


def _check_ids(ds: ray.data.Dataset) -> None:
    """Ids present and unique over a dataset: a distributed count by id."""
    counts = ds.select_columns(["id"]).groupby("id", num_partitions=_partitions(ds.count() // 50_000)).count()
    dup = counts.map_batches(_repeated, batch_format="pyarrow", batch_size=None).take(1)
    if dup:
        raise InputError(f"duplicate input id {dup[0]['id']!r}; ids must be unique")


def _repeated(counts: pa.Table) -> pa.Table:
    return counts.filter(pc.greater(counts.column("count()"), 1))


def pending(inputs: ray.data.Dataset, store: RunStore, tables: tuple[str, ...]) -> ray.data.Dataset:
    """`inputs` minus those whose id is committed in any of `tables`: an anti-join in Ray Data
    (hash-partitioned on both sides), materialised in the object store. The driver lists the
    committed files; it never reads them."""
    files = [p for t in tables for p in store.committed_files(t)]
    if not files:
        return inputs.materialize()
    done = ray.data.read_parquet(files, filesystem=PyFileSystem(FSSpecHandler(store.fs)), columns=["id"])
    n = _partitions(len(files) // 8)
    return inputs.join(done, "left_anti", num_partitions=n, on=("id",)).materialize()


def committed_among(todo: ray.data.Dataset, store: RunStore, table: str) -> set[str]:
    """Ids of `todo` that have a committed row in `table` (a semi-join; for the errors a rerun
    retries, which are few)."""
    files = store.committed_files(table)
    if not files:
        return set()
    fs = PyFileSystem(FSSpecHandler(store.fs))
    done = ray.data.read_parquet(files, filesystem=fs, columns=["id"])
    hits = todo.select_columns(["id"]).join(done, "left_semi", num_partitions=_partitions(len(files) // 8), on=("id",))
    return {r["id"] for r in hits.iter_rows()}


def _partitions(n: int) -> int:
    """Shuffle partitions: 2 for a small job (each is an aggregator actor), at most 64."""
    return max(2, min(64, n))


def filter_files_in_tasks(jobs: list[FilterJob], storage_options: dict[str, Any]) -> list[int | None]:
    """RunStore's conflict path in Ray tasks: each rewrites one file without some ids' rows."""
    task = ray.remote(num_cpus=0.25, max_retries=3)(filter_file)
    return ray.get([task.remote(j, storage_options) for j in jobs])


__all__ = ["INPUT_SCHEMA", "Todo", "filter_files_in_tasks", "input_dataset", "pending", "plan"]

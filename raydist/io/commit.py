"""Commits: a run's staged parts into the output's log, moving no row data through this process
(see `raydist.io.store` for the layout). `commit` is what a run's increment does; `replace`
commits rewrites that hold the same rows (compaction); `stage_without` stages rewrites of
committed files without some ids (`--retry-errors`). Rewriting files is done by a
`FilterFiles`: Ray tasks in the pipeline, in this process by default."""

from __future__ import annotations

import json
import os
import posixpath
from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from raydist.io.fs import full_uri, url_to_fs
from raydist.io.runs import now_iso
from raydist.io.store import LOG, STAGING, RunStore, Taken, _read_moving

# (source path, destination path, ids whose rows go) -> rows kept, or None if no row of the ids was
# there (nothing written). A FilterFiles runs a list of them: in Ray tasks, or in-process.
FilterJob = tuple[str, str, list[str]]
FilterFiles = Callable[[list[FilterJob], dict[str, Any]], list[int | None]]


def filter_file(job: FilterJob, storage_options: dict[str, Any] | None = None) -> int | None:
    """Write `src` minus the rows of `drop` to `dst` (only if some row goes, and only if any is
    left). Returns the rows kept, or None when `src` holds none of `drop`."""
    src, dst, drop = job
    fs, path = url_to_fs(src, storage_options)
    t = _read_moving(fs, path)
    keep = pc.invert(pc.is_in(t.column("id"), pa.array(drop, pa.string())))
    if pc.all(keep).as_py() in (True, None):
        return None
    rest = t.filter(keep)
    if rest.num_rows:
        dfs, dpath = url_to_fs(dst, storage_options)
        dfs.makedirs(posixpath.dirname(dpath), exist_ok=True)
        with dfs.open(dpath, "wb") as f:
            pq.write_table(rest, f, compression="zstd")
    return rest.num_rows


def filter_in_process(jobs: list[FilterJob], storage_options: dict[str, Any]) -> list[int | None]:
    return [filter_file(j, storage_options) for j in jobs]


def commit(
    store: RunStore,
    run_id: str,
    number: int,
    parts: dict[str, list[str]],
    ids: dict[str, list[str]] | list[str],
    taken: Taken,
    done_tables: tuple[str, ...],
    info: dict[str, Any],
    replace_errors_of: set[str] | None = None,
    error_ids: set[str] = frozenset(),  # type: ignore[assignment]
) -> tuple[dict[str, Any], set[str]]:
    """Commit staged `parts` (per table, names under _staging/<run>/<table>/) as commit
    `number` of run `run_id`. `ids`: the ids each part holds (part name -> ids; a plain list
    when there is one part). Rows of ids that other runs committed since this run started
    (`taken`, kept up to date here) are left out: only the parts holding them are rewritten.
    `replace_errors_of`: retried ids whose older error rows go; `error_ids`: which ids are
    error rows (for the counts). Returns (the log entry, the ids left out)."""
    if isinstance(ids, list):
        ((name,),) = {tuple(set(n)) for n in parts.values()}
        ids = {name: ids}
    folder = f"{run_id}-c{number:05d}"
    parts = {t: [_gather(store, run_id, t, folder, n) for n in names] for t, names in parts.items()}
    ids = {f"{folder}/{n}": v for n, v in ids.items()}
    all_ids = {i for v in ids.values() for i in v}
    dropped: set[str] = set()
    rewritten: list[str] = []
    while True:
        entries = list(store.log())
        head = store._head  # this attempt claims head + 1; reads below may see later entries
        new = [e for e in entries if taken.upto < e.get("seq", 0) and e["run_id"] != run_id]
        if new:
            taken.ids.update(store.ids_in(store._located(new, done_tables, skip_rewrites=True)))
        taken.upto = head
        fresh = (all_ids & taken.ids) - dropped
        if fresh:
            dropped |= fresh
            parts = _drop_rows(store, run_id, parts, ids, dropped)
        entry: dict[str, Any] = {
            "seq": head + 1,
            "run_id": run_id,
            "commit": number,
            "files": {t: names for t, names in parts.items() if names},
            "removed": {},
            "rewrites": {},
            "created": now_iso(),
            **info,
        }
        retried = (replace_errors_of or set()) - dropped
        c = info.get("counts", {})
        if c:  # what this commit holds: the processed inputs minus those another run had
            failed = len(dropped & error_ids)
            entry["counts"] = {
                "inputs": c["inputs"] - len(dropped),
                "ok": c["ok"] - (len(dropped) - failed),
                "failed": c["failed"] - failed,
                "retried": len(retried),
                "dropped": len(dropped),
            }
        if retried:
            for n in rewritten:  # an earlier attempt's rewrites: staged again below
                store._rm(store.path(STAGING, run_id, "errors", n))
            staged, entry["removed"]["errors"] = stage_without(store, "errors", retried, run_id, folder)
            rewritten = staged
            entry["files"].setdefault("errors", []).extend(staged)
            entry["rewrites"]["errors"] = staged
        if store._create(store.path(LOG, f"{entry['seq']:08d}.json"), json.dumps(entry, indent=2).encode()):
            break  # else another run took this number: read what it committed and try the next
    store.log()  # (reads our own entry too)
    store._apply(entry)
    store._maybe_checkpoint(entry["seq"])
    return entry, dropped


def replace(
    store: RunStore, run_id: str, number: int, swaps: list[tuple[str, str, list[str]]], info: dict[str, Any]
) -> dict[str, Any] | None:
    """Commit rewrites that hold the same rows as the files they replace (compaction): each
    swap is (table, staged name, committed names it replaces). A swap whose files another
    run replaced meanwhile is left out (its staged file deleted). Returns the log entry, or
    None when no swap is left."""
    while True:
        store.log()
        head = store._head
        live = {t: {store._relative(t, p) for p in store.committed_files(t)} for t in {s[0] for s in swaps}}
        ok = [s for s in swaps if set(s[2]) <= live[s[0]]]
        for t, name, _ in (s for s in swaps if s not in ok):
            store._rm(store.path(STAGING, run_id, t, name))
        swaps = ok
        if not swaps:
            return None
        entry: dict[str, Any] = {
            "seq": head + 1,
            "run_id": run_id,
            "commit": number,
            "files": {},
            "removed": {},
            "rewrites": {},
            "created": now_iso(),
            **info,
        }
        for t, name, old in swaps:
            entry["files"].setdefault(t, []).append(name)
            entry["rewrites"].setdefault(t, []).append(name)  # no new ids: concurrent runs skip them
            entry["removed"].setdefault(t, []).extend(old)
        if store._create(store.path(LOG, f"{entry['seq']:08d}.json"), json.dumps(entry, indent=2).encode()):
            break
    store.log()
    store._apply(entry)
    store._maybe_checkpoint(entry["seq"])
    return entry


def _gather(store: RunStore, run_id: str, table: str, folder: str, name: str) -> str:
    """Move a staged part into the commit's folder (inside the run's staging)."""
    src, rel = store.path(STAGING, run_id, table, name), f"{folder}/{name}"
    if store.local:
        os.makedirs(store.path(STAGING, run_id, table, folder), exist_ok=True)
        os.rename(src, store.path(STAGING, run_id, table, rel))
    else:
        store.fs.mv(src, store.path(STAGING, run_id, table, rel))
    return rel


def _drop_rows(
    store: RunStore, run_id: str, parts: dict[str, list[str]], ids: dict[str, list[str]], drop: set[str]
) -> dict[str, list[str]]:
    """Rewrite the staged parts that hold any id of `drop` without those rows (the others are
    not opened). Returns the parts as they are now."""
    jobs, where = [], []
    for t, names in parts.items():
        for n in names:
            hit = sorted(drop.intersection(ids.get(n, ())))
            if hit:
                stem, k = n[: -len(".parquet")], 1
                while f"{stem}-d{k}.parquet" in names:
                    k += 1
                jobs.append(
                    (store.uri(STAGING, run_id, t, n), store.uri(STAGING, run_id, t, f"{stem}-d{k}.parquet"), hit)
                )
                where.append((t, n, f"{stem}-d{k}.parquet"))
    kept = store.filter_files(jobs, store.storage_options) if jobs else []
    out = {t: list(names) for t, names in parts.items()}
    for (t, old, new), rows in zip(where, kept):
        if rows is None:  # (a table with no row for those ids)
            continue
        i = out[t].index(old)
        out[t][i : i + 1] = [new] if rows else []
        ids[new] = [i for i in ids[old] if i not in drop]
        store._rm(store.path(STAGING, run_id, t, old))
    return out


def stage_without(
    store: RunStore, table: str, ids: set[str], run_id: str, folder: str = "rewrite", files: list[str] | None = None
) -> tuple[list[str], list[str]]:
    """Stage rewrites of the committed files of `table` (or `files`, relative names) that hold
    any of `ids`, minus those rows, in `folder` of run `run_id`'s staging (by `filter_files`).
    Returns (staged names, replaced names) for its log entry."""
    located = store.committed_files(table)
    names = [store._relative(table, p) for p in located]
    if files is not None:
        located, names = zip(*[(p, n) for p, n in zip(located, names) if n in files]) or ((), ())
    drop, dsts = sorted(ids), [f"{folder}/rewrite-{n.replace('/', '-')}" for n in names]
    jobs = [(full_uri(store.fs, p), store.uri(STAGING, run_id, table, d), drop) for p, d in zip(located, dsts)]
    staged, replaced = [], []
    for d, n, rows in zip(dsts, names, store.filter_files(jobs, store.storage_options) if jobs else []):
        if rows is not None:
            replaced.append(n)
            staged += [d] if rows else []
    return staged, replaced

"""`raydist index`, `raydist search` and `raydist dedupe`: a vector index over an embedding output,
queries by sound or by id, and near-duplicate groups. No Ray: these run in this process."""

from __future__ import annotations

import json
from typing import List, Optional

import typer

from raydist.cli.options import EndpointUrl, check_local_inputs, fail, user_errors


def index(
    embeddings: str = typer.Argument(..., help="Output of raydist embed (directory or s3:// URI)."),
    out: str = typer.Option(..., "--out", help="Index directory (local or s3://); created, or updated if it exists."),
    level: str = typer.Option("clips", help="What to index: clips, segments or events."),
    endpoint_url: EndpointUrl = None,
) -> None:
    """Index an output's committed rows (vectors and metadata in one LanceDB table). Run again after
    new commits: it adds exactly the rows of the commits it does not hold yet."""
    from raydist.console import progress
    from raydist.io.inputs import storage_options_for
    from raydist.search.index import build_index

    check_local_inputs([embeddings])
    with user_errors():
        done = build_index(
            embeddings,
            out,
            level,
            storage_options_for(endpoint_url),
            progress=lambda i, n: progress(f"raydist index: commit {i}/{n}", final=i == n),
        )
    ann = "; ANN index (IVF-PQ) updated" if done["ann"] else ""
    typer.echo(
        f"raydist: indexed {done['added']} new {level} rows from {_n(done['commits_added'], 'commit')}; "
        f"{done['rows']} rows from {_n(done['commits'], 'commit')} in {out}{ann}"
    )


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def search(
    idx: str = typer.Argument(..., help="Index directory made by raydist index."),
    audio: Optional[List[str]] = typer.Option(None, "--audio", help="Query by sound: an audio file (repeatable)."),
    id: Optional[List[str]] = typer.Option(None, "--id", help="Query by an indexed id (ID#N: region N of a clip)."),
    k: int = typer.Option(10, "-k", min=1, max=10_000, help="Neighbours per query."),
    where: Optional[str] = typer.Option(None, help="SQL filter over the index's columns, e.g. \"label = 'piano'\"."),
    model: Optional[str] = typer.Option(
        None, help="Checkpoint for --audio (default: the one the index was built from)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (one list of hits per query)."),
    endpoint_url: EndpointUrl = None,
) -> None:
    """Find the nearest clips (or segments, events) to a sound or to an indexed id, by cosine distance."""
    from raydist.io.inputs import storage_options_for
    from raydist.search.query import search_audio, search_ids

    if bool(audio) == bool(id):
        fail("give --audio FILE... or --id ID..., not both and not neither")
    check_local_inputs(audio or [], **({"model": model} if model else {}))
    so = storage_options_for(endpoint_url)
    with user_errors():
        if audio:
            hits, queries = search_audio(idx, audio, k, where, model, so), audio
        else:
            hits, queries = search_ids(idx, id, k, where, so), id
    if as_json:
        typer.echo(json.dumps([{"query": q, "hits": h.to_pylist()} for q, h in zip(queries, hits)], indent=1))
        return
    for query, table in zip(queries, hits):
        typer.echo(f"query {query}: {table.num_rows} neighbours")
        typer.echo(_table(table))


def _table(hits) -> str:
    cols = [
        c for c in ("id", "segment", "event", "start_s", "end_s", "label", "distance", "uri") if c in hits.column_names
    ]
    rows = [["rank", *cols]]
    for rank, r in enumerate(hits.to_pylist(), 1):
        rows.append(
            [str(rank)]
            + [f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c] if r[c] is not None else "") for c in cols]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows)


def dedupe(
    idx: str = typer.Argument(..., help="Index directory made by raydist index."),
    out: str = typer.Option(..., "--out", help="Directory (or s3:// URI) for duplicates.parquet."),
    threshold: Optional[float] = typer.Option(
        None, min=0.0, max=2.0, help="Cosine distance under which two rows are one recording (default: see docs)."
    ),
    endpoint_url: EndpointUrl = None,
) -> None:
    """Groups of near-duplicate clips (re-encodings, gain changes, small shifts of one recording) as
    a Parquet table: group, id, distance to the group's first row."""
    import posixpath

    import pyarrow.parquet as pq

    from raydist.console import progress
    from raydist.io.fs import url_to_fs
    from raydist.io.inputs import storage_options_for
    from raydist.search.dedupe import THRESHOLD
    from raydist.search.dedupe import dedupe as find_groups

    so = storage_options_for(endpoint_url)
    with user_errors():
        groups = find_groups(
            idx,
            THRESHOLD if threshold is None else threshold,
            so,
            progress=lambda i, n: progress(f"raydist dedupe: {i}/{n} rows", final=i == n),
        )
        fs, root = url_to_fs(out, so)
        fs.makedirs(root, exist_ok=True)
        with fs.open(posixpath.join(root, "duplicates.parquet"), "wb") as f:
            pq.write_table(groups, f)
    n = len(set(groups.column("group").to_pylist()))
    typer.echo(f"raydist: {n} groups of near-duplicates, {groups.num_rows} rows; wrote {out}/duplicates.parquet")

"""What a user would write instead of `raydist embed`, doing the same work: list the inputs, decode
(raydist's `decode_batch`), encode and derive the clip, event and segment features (raydist's
`EncodeBatch`), cut the rows into the same tables (`split_tables`) and write them as Parquet, one
file per table per batch of `rows_per_file` clips. No Ray, no commit log, no resume.

    python -m bench.peer_sides mp CORPUS MODEL OUT [--procs 2]        # multiprocessing.Pool
    python -m bench.peer_sides datasets CORPUS MODEL OUT [--procs 2]  # Hugging Face datasets.map

Run as a whole command (a cold process) by `python -m bench peers`.
"""

from __future__ import annotations

import argparse
import os

import pyarrow as pa
import pyarrow.parquet as pq

from raydist.config import OutputConfig, ResourceConfig, SegmentConfig
from raydist.io.inputs import resolve_inputs

CONFIGS = {"output_config": OutputConfig().to_dict(), "segment_config": SegmentConfig().to_dict()}
_worker: dict = {}


def _encoder(model: str):
    if "encode" not in _worker:
        import torch

        torch.set_num_threads(1)  # one process per core, as Ray gives each actor one CPU
        from raydist.pipeline.embed import EncodeBatch

        _worker["encode"] = EncodeBatch(model, CONFIGS)
    return _worker["encode"]


def process(todo: pa.Table, model: str, out: str, part: int) -> tuple[int, float]:
    """decode -> encode -> tables -> Parquet for one batch (files named by `part`, the batch's
    first row); (clips, audio seconds)."""
    from raydist.pipeline.decode import decode_batch
    from raydist.pipeline.embed import split_tables

    enc = _encoder(model)
    rows = enc(decode_batch(todo, enc.m.features.sample_rate))
    for table, t in split_tables(rows, CONFIGS).items():
        if t.num_rows:
            os.makedirs(os.path.join(out, table), exist_ok=True)
            pq.write_table(t, os.path.join(out, table, f"part-{part:06d}.parquet"))
    ok = [d for d in rows.column("duration_s").to_pylist() if d is not None]
    return rows.num_rows, float(sum(ok))


def _mp_task(args) -> tuple[int, float]:
    return process(*args)


def run_mp(todo: pa.Table, model: str, out: str, procs: int, batch: int) -> tuple[int, float]:
    import multiprocessing as mp

    jobs = [(todo.slice(i, batch), model, out, i) for i in range(0, todo.num_rows, batch)]
    with mp.get_context("spawn").Pool(procs) as pool:
        done = pool.map(_mp_task, jobs, chunksize=1)
    return sum(n for n, _ in done), sum(a for _, a in done)


def _ds_batch(batch: dict, indices: list[int], model: str, out: str) -> dict:
    n, audio = process(pa.Table.from_pydict(batch), model, out, indices[0])  # files named by first row
    return {"clips": [n], "audio_s": [audio]}


def run_datasets(todo: pa.Table, model: str, out: str, procs: int, batch: int) -> tuple[int, float]:
    import datasets

    datasets.disable_progress_bars()
    ds = datasets.Dataset(todo)
    done = ds.map(
        _ds_batch,
        batched=True,
        batch_size=batch,
        with_indices=True,
        num_proc=procs,
        remove_columns=ds.column_names,
        fn_kwargs={"model": model, "out": out},
        load_from_cache_file=False,
    )
    done.to_parquet(os.path.join(out, "summary.parquet"))  # what map returns, written like the tables
    return sum(done["clips"]), sum(done["audio_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("peer", choices=["mp", "datasets"])
    ap.add_argument("corpus")
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--batch", type=int, default=ResourceConfig().batch_size, help="clips per task and per file")
    args = ap.parse_args()
    todo = resolve_inputs([args.corpus]).table.select(["id", "uri", "label", "split"])
    run = run_mp if args.peer == "mp" else run_datasets
    clips, audio = run(todo, args.model, args.out, args.procs, args.batch)
    print(f"{args.peer}: {clips} clips, {audio:.1f} s of audio")


if __name__ == "__main__":
    main()

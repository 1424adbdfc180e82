"""Cluster scale, simulated on one machine: what the driver carries per commit and at run start.

    python -m bench scale                       # (a) 10^3..10^6 rows per commit, (b) 10^8 ids x 10^7 inputs
    python -m bench scale --ids 1e7 --inputs 1e6   # a smaller (b)

Method.
(a) Commits: a commit of R rows, staged as Parquet parts of 1,000 rows (id + a 64-float
    embedding, ~300 bytes a row: the stand-in for writer tasks, written before the clock starts),
    committed by `RunStore.commit` in a fresh process. Measured: the commit's wall time, the
    bytes of data files the driver opened during it (an fsspec wrapper counts them), and the
    driver's peak RSS above its RSS before the commit.
(b) Run start at scale: an output holding `--ids` committed ids (synthetic commits of 50,000
    ids each, one file each, committed through `RunStore.commit`, log checkpoints included), and
    a Parquet manifest of `--inputs` rows of which half are committed. `raydist embed` of the
    manifest (a tiny untrained model; the new inputs point at files that do not exist, so they
    become error rows, which is all the first batch needs) in its own process, with its own
    local Ray on this machine's cores: seconds from start to the pipeline starting (the todo
    known: manifest read, ids checked, anti-join done) and to the first commit (--commit-seconds
    5: about the first batches through decode, encode and write), and the driver's
    peak RSS (VmHWM) by then. The run is then stopped with SIGINT.
(c) A paper model: from (a) and (b)'s per-unit costs, which part saturates first at N GPUs x R
    audio-s/s each (see `model()`; its constants are stated in the rendered table).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.report import table

PART_ROWS = 1000


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def commit_once(rows: int) -> dict:
    """(a) in this process: stage `rows` rows in parts, then time one commit."""
    from raydist.io.store import RunStore, Taken

    out = tempfile.mkdtemp(prefix="bench-scale-a-")
    store = RunStore(out)
    rng = np.random.default_rng(0)
    parts, ids = [], {}
    os.makedirs(store.path("_staging", "run", "clips"))
    emb = pa.FixedSizeListArray.from_arrays(rng.standard_normal(PART_ROWS * 64).astype(np.float32), 64)
    for k in range(0, rows, PART_ROWS):
        n = min(PART_ROWS, rows - k)
        part_ids = pc.binary_join_element_wise("id-", pc.cast(pa.array(np.arange(k, k + n)), pa.string()), "")
        name = f"part-{k:08d}.parquet"
        pq.write_table(
            pa.table({"id": part_ids, "embedding": emb.slice(0, n)}), store.path("_staging", "run", "clips", name)
        )
        parts.append(name)
        ids[name] = part_ids.to_pylist()
    opened = []
    real_open = store.fs.open

    def counting_open(path, *a, **k):
        if str(path).endswith(".parquet"):
            opened.append(os.path.getsize(path))
        return real_open(path, *a, **k)

    store.fs.open = counting_open
    before = _rss_mb()
    info = {"counts": {"inputs": rows, "ok": rows, "failed": 0}}
    t = time.perf_counter()
    store.commit("run", 0, {"clips": parts}, ids, Taken(0), ("clips", "errors"), info)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    return {
        "rows": rows,
        "files": len(parts),
        "commit_s": wall,
        "data_bytes_opened": sum(opened),
        "rss_before_mb": before,
        "peak_above_mb": max(0.0, peak - before),
        "staged_mb": sum(os.path.getsize(store.path("clips", "run-c00000", p)) for p in parts) / 1e6,
    }


def commits(sizes: list[int]) -> list[dict]:
    out = []
    for rows in sizes:
        code = f"import json, bench.scale as s; print(json.dumps(s.commit_once({rows})))"
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        out.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(f"scale (a): {out[-1]}", flush=True)
    return out


def build_store(out: str, ids: int, per_commit: int = 50_000) -> float:
    """(b)'s output: `ids` committed ids, one file per commit, through RunStore.commit."""
    from raydist.io.store import RunStore, Taken

    store = RunStore(out)
    start = time.perf_counter()
    for c, k in enumerate(range(0, ids, per_commit)):
        n = min(per_commit, ids - k)
        part_ids = pc.binary_join_element_wise("clip-", pc.cast(pa.array(np.arange(k, k + n)), pa.string()), "")
        name = f"part-{c:06d}.parquet"
        store.fs.makedirs(store.path("_staging", "synthetic", "clips"), exist_ok=True)
        pq.write_table(pa.table({"id": part_ids}), store.path("_staging", "synthetic", "clips", name))
        info = {"counts": {"inputs": n, "ok": n, "failed": 0}}
        store.commit("synthetic", c, {"clips": [name]}, {name: []}, Taken(store._head), ("clips",), info)
        if c % 200 == 0:
            print(f"scale (b): {k + n:,} ids committed", flush=True)
    store.drop_staging("synthetic")
    return time.perf_counter() - start


def write_manifest(path: str, inputs: int, committed: int) -> None:
    """`inputs` rows: the even ones committed (ids below `committed`), the odd ones new."""
    writer = None
    for k in range(0, inputs, 1_000_000):
        n = min(1_000_000, inputs - k)
        idx = np.arange(k, k + n) * 2
        idx[1::2] = committed + idx[1::2]  # every other row: an id the store does not hold
        ids = pc.binary_join_element_wise("clip-", pc.cast(pa.array(idx), pa.string()), "")
        uris = pc.binary_join_element_wise("/nonexistent/", ids, ".wav")
        t = pa.table({"id": ids, "uri": uris})
        writer = writer or pq.ParquetWriter(path, t.schema, compression="zstd")
        writer.write_table(t)
    writer.close()


def run_start(ids: int, inputs: int, cpus: int) -> dict:
    """(b): rerun over a manifest against a store of `ids` committed ids."""
    from bench.corpora.tones import make_model

    tmp = tempfile.mkdtemp(prefix="bench-scale-b-")
    out, manifest = os.path.join(tmp, "out"), os.path.join(tmp, "manifest.parquet")
    build_s = build_store(out, ids)
    write_manifest(manifest, inputs, ids)
    model = make_model(os.path.join(tmp, "model"))
    env = {**os.environ, "RAYDIST_LOG_DIR": os.path.join(tmp, "logs")}
    cmd = [
        sys.executable,
        "-m",
        "raydist.cli",
        "embed",
        manifest,
        "--model",
        model,
        "--out",
        out,
        "--commit-seconds",
        "5",
    ]
    log = os.path.join(tmp, "console.txt")
    start = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    first_entry = os.path.join(out, "_log", f"{-(-ids // 50_000) + 1:08d}.json")
    started_s = committed_s = None
    hwm = 0.0
    while proc.poll() is None and time.time() - start < 3600:
        if started_s is None and "starting" in open(log).read():
            started_s = time.time() - start
        hwm = max(hwm, _hwm(proc.pid))
        if os.path.exists(first_entry):
            committed_s = time.time() - start
            break
        time.sleep(0.2)
    hwm = max(hwm, _hwm(proc.pid))
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=600)
    text = open(log).read()
    return {
        "ids": ids,
        "inputs": inputs,
        "cpus": cpus,
        "build_store_s": build_s,
        "to_start_s": started_s,
        "to_first_commit_s": committed_s,
        "driver_peak_rss_mb": hwm,
        "exit_code": proc.returncode,
        "tail": text[-600:],
    }


def _hwm(pid: int) -> float:
    """A process's peak RSS so far (MB), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(next(ln for ln in f if ln.startswith("VmHWM")).split()[1]) / 1e3
    except (OSError, StopIteration):
        return 0.0


# (c) constants: stated, not measured here
BYTES_PER_AUDIO_S = 1600  # committed output per audio-second (measured in issue 38's report: 32 MB / 20,000 s)
S3_WRITES_PER_PREFIX_S = 3500  # S3's documented PUT/COPY/DELETE rate per prefix
S3_REQUESTS_PER_FILE = 5  # the writer's PUT, the gather's copy + delete, the publish's copy + delete


def model(a: list[dict], rate: float) -> list[dict]:
    """Where the commit path saturates, per file size: the driver (its per-file commit cost from
    (a), busy all the time) and S3's write rate per prefix (requests per file stated above), as
    the number of GPUs at `rate` audio-s/s each that reaches either."""
    big = max(a, key=lambda r: r["files"])
    per_file_s = big["commit_s"] / big["files"]
    rows = []
    for clips, seconds in ((500, 1.0), (500, 5.0), (5000, 5.0)):
        file_bytes = clips * seconds * BYTES_PER_AUDIO_S
        files_per_gpu_s = rate * BYTES_PER_AUDIO_S / file_bytes
        rows.append(
            {
                "rows_per_file": clips,
                "clip_s": seconds,
                "file_mb": file_bytes / 1e6,
                "files_per_gpu_s": files_per_gpu_s,
                "driver_gpus": 1.0 / (files_per_gpu_s * per_file_s),
                "s3_gpus": S3_WRITES_PER_PREFIX_S / (files_per_gpu_s * S3_REQUESTS_PER_FILE),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=float, nargs="+", default=[1e3, 1e4, 1e5, 1e6], help="(a) rows per commit")
    p.add_argument("--ids", type=float, default=1e8, help="(b) committed ids in the store")
    p.add_argument("--inputs", type=float, default=1e7, help="(b) rows of the manifest")
    p.add_argument("--rate", type=float, default=10_000, help="(c) audio-s/s per GPU")
    args = p.parse_args(argv)
    a = commits([int(s) for s in args.sizes])
    b = run_start(int(args.ids), int(args.inputs), os.cpu_count() or 2)
    print(f"scale (b): {b}", flush=True)
    return {"commits": a, "run_start": b, "rate": args.rate}


def render(r: dict) -> str:
    a = table(
        [
            "rows per commit",
            "files",
            "commit (s)",
            "data bytes the driver opened",
            "driver peak above baseline (MB)",
            "committed (MB)",
        ],
        [
            [
                f"{x['rows']:,}",
                x["files"],
                f"{x['commit_s']:.3f}",
                x["data_bytes_opened"],
                f"{x['peak_above_mb']:.1f}",
                f"{x['staged_mb']:.1f}",
            ]
            for x in r["commits"]
        ],
    )
    b = r["run_start"]
    bt = table(
        [
            "committed ids",
            "manifest rows",
            "start to todo known (s)",
            "start to first commit (s)",
            "driver peak RSS (MB)",
        ],
        [
            [
                f"{b['ids']:,}",
                f"{b['inputs']:,}",
                _s(b["to_start_s"]),
                _s(b["to_first_commit_s"]),
                f"{b['driver_peak_rss_mb']:.0f}",
            ]
        ],
    )
    c = table(
        [
            "rows per file",
            "clip (s)",
            "file (MB)",
            "files/s per GPU",
            "GPUs that fill the driver",
            "GPUs that fill S3's rate",
        ],
        [
            [
                x["rows_per_file"],
                f"{x['clip_s']:.0f}",
                f"{x['file_mb']:.1f}",
                f"{x['files_per_gpu_s']:.1f}",
                f"{x['driver_gpus']:,.0f}",
                f"{x['s3_gpus']:,.0f}",
            ]
            for x in model(r["commits"], r["rate"])
        ],
    )
    join_rate = (b["ids"] + b["inputs"]) / b["to_start_s"] if b["to_start_s"] else 0.0
    m = model(r["commits"], r["rate"])[0]
    first = "S3's rate" if m["s3_gpus"] < m["driver_gpus"] else "The driver's capacity"
    return (
        f"(a) One commit against its size (parts of {PART_ROWS:,} rows):\n\n{a}\n\n"
        f"(b) A rerun's start against a large output, on {b['cpus']} cores:\n\n{bt}\n\n"
        f"(c) Paper model at {r['rate']:,.0f} audio-s/s per GPU and {BYTES_PER_AUDIO_S:,} bytes of output per "
        f"audio-second; the driver's cost per file is (a)'s at 1,000 files; each file costs S3 "
        f"{S3_REQUESTS_PER_FILE} writes (the writer's PUT, the gather's copy and delete, the publish's copy and "
        f"delete) against S3's {S3_WRITES_PER_PREFIX_S:,} per prefix per second. {first} is reached first: "
        f"raise `--rows-per-file` as the cluster grows, and compact. A run's start is a hash "
        f"shuffle of inputs and committed ids: (b) did {join_rate / 1e6:.2f} million ids a second on "
        f"{b['cpus']} cores, and it spreads over the cluster's cores.\n\n{c}"
    )


def _s(x) -> str:
    return "—" if x is None else f"{x:.1f}"


def headline(r: dict) -> list[tuple[str, str]]:
    big = max(r["commits"], key=lambda x: x["rows"])
    b = r["run_start"]
    return [
        (
            f"commit of {big['rows']:,} rows in {big['files']:,} files",
            f"{big['commit_s']:.2f} s, {big['data_bytes_opened']} data bytes read by the driver",
        ),
        (
            f"rerun start, {b['ids']:.0e} committed ids x {b['inputs']:.0e} inputs",
            f"todo known after {_s(b['to_start_s'])} s, driver peak {b['driver_peak_rss_mb']:.0f} MB",
        ),
    ]

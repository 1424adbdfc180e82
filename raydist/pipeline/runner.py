"""The one pipeline runner behind `embed` and `compress`: inputs -> Ray Data (decode tasks ->
an actor pool that runs the model -> Parquet writer tasks) -> a committed run in the output
directory. Reruns process only what is missing.

What differs between embed and compress is a `Spec`: its actor class, how the actor's wide rows
split into output tables, and which tables' ids count as done. `raydist.pipeline.embed` and
`raydist.pipeline.compress` each define one."""

from __future__ import annotations

import json
import platform
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import pyarrow as pa
import ray

from raydist.config import OutputConfig, ResourceConfig
from raydist.console import progress as show
from raydist.errors import RaydistError
from raydist.io.runs import Heartbeat, driver_info, new_run_id, now_iso
from raydist.io.schema import SCHEMA_VERSION
from raydist.io.store import STAGING, RunStore, Taken
from raydist.pipeline.decode import decode_batch
from raydist.pipeline.summary import RunSummary
from raydist.pipeline.todo import filter_files_in_tasks, plan
from raydist.pipeline.write import write_parts
from raydist.signals import Interrupted, name, on_signals, run_until_signal


@dataclass(frozen=True)
class Spec:
    """What a pipeline run makes. `actor(model_uri, configs, storage_options, device)` is the
    Ray Data actor that turns decoded clips into wide rows; `split(rows, configs)` turns those into
    output tables (it runs in writer tasks: its module must not import torch); `done_tables` are
    the tables whose ids count as done on a rerun."""

    name: str  # "embed" | "compress": progress lines
    actor: type
    split: Callable[[pa.Table, dict[str, dict]], dict[str, pa.Table]]
    done_tables: tuple[str, ...]


def pool(cfg: ResourceConfig) -> tuple[int, float, float]:
    """(actors, cpus, gpus) per model actor, sized from the cluster (never every CPU)."""
    res = ray.cluster_resources()
    gpus = cfg.gpus_per_actor or (1.0 if res.get("GPU", 0) >= 1 else 0.0)
    if gpus:
        return cfg.actors or max(1, int(res["GPU"] // gpus)), cfg.cpus_per_actor, gpus
    return cfg.actors or max(1, int(res.get("CPU", 2) // 1)), cfg.cpus_per_actor, 0.0


def versions() -> dict[str, str]:
    import pyarrow
    import torch
    import torchaudio

    import raydist

    return {
        "raydist": raydist.__version__,
        "ray": ray.__version__,
        "torch": torch.__version__,
        "torchaudio": torchaudio.__version__,
        "pyarrow": pyarrow.__version__,
        "python": platform.python_version(),
    }


def build_dataset(
    spec: Spec,
    todo: pa.Table | ray.data.Dataset,
    model_uri: str,
    cfg: ResourceConfig,
    configs: dict[str, dict],
    staging: str,
    run_id: str,
    sample_rate: int,
    metadata: dict[str, str],
    storage_options: dict | None,
) -> ray.data.Dataset:
    """The streaming pipeline; its rows are per-part summaries."""
    actors, cpus, gpus = pool(cfg)
    if isinstance(todo, pa.Table):  # one block per decode batch, cut here: streaming starts at once
        blocks = ray.data.from_arrow(
            [todo.slice(i, cfg.decode_batch) for i in range(0, todo.num_rows, cfg.decode_batch)]
        )
    else:
        blocks = small_blocks(todo, cfg.decode_batch)
    ds = blocks.map_batches(
        decode_batch,
        fn_args=(sample_rate, storage_options),
        batch_size=cfg.decode_batch,
        batch_format="pyarrow",
        num_cpus=cfg.decode_cpus,
    )
    ds = ds.map_batches(
        spec.actor,
        fn_constructor_args=(model_uri, configs, storage_options, "cuda" if gpus else "cpu"),
        batch_size=cfg.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus,
        num_gpus=gpus,
    )
    return ds.map_batches(
        write_parts,
        fn_args=(spec.split, staging, run_id, configs, metadata, storage_options),
        batch_size=OutputConfig.from_dict(configs["output_config"]).rows_per_file,
        batch_format="pyarrow",
        num_cpus=0.25,
    )


def small_blocks(ds: ray.data.Dataset, rows: int) -> ray.data.Dataset:
    """`ds` cut (streaming) into blocks of `rows` rows, so decode tasks run in parallel from the
    first block. Ray 2.60's repartition task asks for a whole CPU and has no option to ask for
    less; beside an actor pool holding part of every CPU it would never be scheduled, so its
    logical operator is given a tenth of one (if that field moves, the whole CPU is asked for)."""
    out = ds.repartition(target_num_rows_per_block=rows)
    args = getattr(getattr(getattr(out, "_logical_plan", None), "dag", None), "ray_remote_args", None)
    if isinstance(args, dict):
        args["num_cpus"] = 0.1
    return out


def run_pipeline(
    spec: Spec,
    inputs: list[str],
    out: str,
    model_uri: str,
    resources: ResourceConfig,
    configs: dict[str, dict],
    retry_errors: bool = False,
    storage_options: dict[str, Any] | None = None,
    progress: bool = True,
) -> RunSummary:
    """Run `spec` over `inputs` into `out` (Ray must be initialised), committing every
    `commit_every` inputs or `commit_seconds` (OutputConfig). `configs` (output_config and the
    spec's own, e.g. segment_config) go to the actors and writers and into the run's record.
    Safe to rerun, and to run beside another run on the same output: it skips every input
    already committed, and drops from its commits inputs another run committed meanwhile.
    `retry_errors` also processes again inputs whose only record is an error row. SIGINT or
    SIGTERM (in the main thread) commits what is finished and raises RunInterrupted."""
    from raydist.embedding.encoders import check_same, identify  # torch: the driver only, never the writers

    start = time.time()
    so = storage_options or {}
    model = identify(model_uri, so)  # fail fast on a bad checkpoint or encoder module
    store = RunStore(out, so, filter_files=filter_files_in_tasks)
    store.check_writable()
    check_same(store.manifests(), model, out)
    output = OutputConfig.from_dict(configs["output_config"])
    run_id = new_run_id()
    recorded = {  # every config of the run: for the actors, the writers' metadata and the record
        **model.configs,  # the VAE's feature and model configs, or the HEAR encoder's description
        "resource_config": resources.to_dict(),
        **configs,
    }
    record = {
        "run_id": run_id,
        "kind": spec.name,
        "state": "running",
        "schema_version": SCHEMA_VERSION,
        "inputs": inputs,
        "model": {"uri": model_uri, "sha256": model.sha256, "vae_sha256": model.vae_sha256, "step": model.step},
        **recorded,
        "retry_errors": retry_errors,
        "driver": driver_info(),
        "lease_s": output.lease_s,
        "versions": versions(),
        "created": now_iso(),
        "commits": [],
        "counts": {"inputs": 0, "ok": 0, "failed": 0, "retried": 0, "dropped": 0},
    }
    heartbeat = Heartbeat(store, record, every_s=output.lease_s / 4)  # before anything is staged
    try:
        store.recover(me=run_id)
        log = store.log()
        taken = Taken(log[-1].get("seq", 0) if log else 0)  # later commits of other runs go in here
        results = tuple(t for t in spec.done_tables if t != "errors")
        ray.data.DataContext.get_current().raise_original_map_exception = True  # report the real cause of a failure
        with on_signals(raise_first=True):  # (minutes on a large output): a signal stops it, nothing is lost
            work = plan(inputs, store, results if retry_errors else spec.done_tables, so, retry_errors)
        todo, n_todo, retried = work.rows, work.todo, work.retried
        summary = RunSummary(
            out,
            inputs=work.inputs,
            already_done=work.inputs - n_todo,
            retried=len(retried),
            skipped_extensions=work.skipped,
            run_id=run_id,
        )
        if n_todo == 0:
            summary.wall_s = time.time() - start
            heartbeat.stop(state="nothing to do", ended=now_iso())
            return summary
        metadata = {
            "raydist.schema_version": SCHEMA_VERSION,
            "raydist.run_id": run_id,
            "raydist.model_sha256": model.sha256,
            **{f"raydist.{k}": json.dumps(v) for k, v in recorded.items()},
        }
        ds = build_dataset(
            spec, todo, model_uri, resources, recorded, store.uri(STAGING, run_id), run_id,
            model.sample_rate, metadata, so,
        )  # fmt: skip
        commits = Commits(store, spec, run_id, taken, output, heartbeat, summary, retried, model.sha256)
        signum = _run_until_done_or_signal(ds, commits, spec.name, n_todo, start, progress)
    except BaseException as e:
        if isinstance(e, Interrupted):  # before the pipeline started
            stop_datasets()
            heartbeat.stop(state="interrupted", ended=now_iso())
            raise Interrupted(e.signum, f"{e} while working out what to do; this run committed nothing") from None
        heartbeat.stop(state="failed", ended=now_iso(), error=_cause(e))
        if isinstance(e, Exception) and "commits" in locals():  # the pipeline or a commit failed
            kept = summary.ok + summary.failed
            raise RunFailed(
                f"run {run_id} stopped after {kept} of {n_todo} inputs were committed: {_cause(e)}. "
                f"What was committed is kept and earlier runs are intact; run the same command again to "
                f"process what is missing."
            ) from e
        raise
    summary.wall_s = time.time() - start
    store.drop_staging(run_id)  # parts of batches in flight at an interrupt
    if signum:
        heartbeat.stop(state="interrupted", ended=now_iso())
        raise RunInterrupted(signum, summary, n_todo - summary.ok - summary.failed - summary.dropped)
    heartbeat.stop(state="complete", ended=now_iso(), wall_s=summary.wall_s)
    return summary


class RunFailed(RaydistError, RuntimeError):
    """A pipeline run stopped for good; the output holds whole commits only."""


class RunInterrupted(Interrupted):
    """SIGINT or SIGTERM stopped a run after committing what was finished."""

    def __init__(self, signum: int, summary: RunSummary, remaining: int):
        self.summary, self.remaining = summary, remaining
        done = summary.already_done + summary.ok + summary.failed + summary.dropped
        super().__init__(
            signum,
            f"interrupted by {name(signum)}: {done} of {summary.inputs} inputs are committed "
            f"({summary.ok + summary.failed} by this run), {remaining} remain",
        )


class Commits:
    """The driver's side of a run: finished parts arrive (from the collector thread), and every
    `commit_every` inputs or `commit_seconds` they are committed as one increment."""

    def __init__(self, store, spec, run_id, taken, output, heartbeat, summary, retried, model_sha):
        self.store, self.spec, self.run_id, self.taken = store, spec, run_id, taken
        self.output, self.heartbeat, self.summary, self.retried = output, heartbeat, summary, retried
        self.model_sha = model_sha
        self.lock = threading.Lock()
        self.pending: list[dict] = []
        self.closed = False
        self.number = 0
        self.last = time.time()
        self.processed = 0  # inputs in finished parts, committed or not

    def add(self, rows: list[dict]) -> bool:
        """Take finished parts; commit if one is due. False once closed (stop consuming)."""
        with self.lock:
            if self.closed:
                return False
            self.pending += rows
            self.processed += sum(len(r["ids"]) for r in rows)
            n = sum(len(r["ids"]) for r in self.pending)
            if n >= self.output.commit_every or time.time() - self.last >= self.output.commit_seconds:
                self._commit()
            return True

    def close(self) -> None:
        """Commit what is pending and take no more."""
        with self.lock:
            self.closed = True
            self._commit()

    def _commit(self) -> None:
        rows, self.pending, self.last = self.pending, [], time.time()
        if not rows:
            return
        parts: dict[str, list[str]] = {}
        for row in rows:
            for t in row["tables"]:
                parts.setdefault(t, []).append(row["part"])
        part_ids = {r["part"]: r["ids"] for r in rows}
        ids = [i for r in rows for i in r["ids"]]
        error_ids = {i for r in rows for i in r["error_ids"]}
        ok, failed = sum(r["ok"] for r in rows), sum(r["failed"] for r in rows)
        retried = self.retried & set(ids)
        info = {
            "counts": {"inputs": len(ids), "ok": ok, "failed": failed, "retried": len(retried)},
            "audio_s": sum(r["audio_s"] for r in rows),
            "schema_version": SCHEMA_VERSION,
            "model_sha256": self.model_sha,
        }
        entry, dropped = self.store.commit(
            self.run_id, self.number, parts, part_ids, self.taken, self.spec.done_tables, info, retried, error_ids
        )
        self.number += 1
        s, c = self.summary, entry["counts"]
        s.ok, s.failed, s.dropped = s.ok + c["ok"], s.failed + c["failed"], s.dropped + c["dropped"]
        for r in rows:
            for k in ("audio_s", "source_bytes", "pcm16_bytes", "payload_bytes"):
                setattr(s, k, getattr(s, k) + r[k])
            for t, size in zip(r["tables"], r["written_bytes"]):
                s.written_bytes[t] = s.written_bytes.get(t, 0) + size
        total = self.heartbeat.record["counts"]
        self.heartbeat.update(
            commits=[*self.heartbeat.record["commits"], entry["seq"]],
            counts={k: total.get(k, 0) + c[k] for k in c},
            audio_s=s.audio_s,
            bytes={
                "source": s.source_bytes,
                "pcm16": s.pcm16_bytes,
                "payload": s.payload_bytes,
                "written": s.written_bytes,
            },
        )


def _run_until_done_or_signal(ds, commits: Commits, name: str, total: int, start: float, progress: bool) -> int:
    """Consume the pipeline (committing as it goes) until it ends or SIGINT/SIGTERM arrives; then
    commit what is finished. Returns the signal number that stopped the run, or 0."""

    def line() -> str:
        s, el = commits.summary, time.time() - start
        audio = s.audio_s + sum(r["audio_s"] for r in commits.pending)
        left = (total - commits.processed) * el / max(commits.processed, 1)
        return (
            f"raydist {name}: {commits.processed}/{total} inputs, {s.ok + s.failed} committed "
            f"({s.failed} failed), {audio / 3600:.3f} h audio, {audio / max(el, 1e-9):.0f} audio-s/s, "
            f"ETA {left:.0f} s"
        )

    def collect() -> None:
        seen: set[str] = set()
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            rows = [r for r in batch.to_pylist() if r["part"] not in seen]  # a retried task's summary
            seen.update(r["part"] for r in rows)
            if not commits.add(rows):
                return
            if progress:
                show(line())
        commits.close()

    if progress:  # until the first batch is done (model actors start, the first clips decode)
        done = commits.summary.already_done
        show(f"raydist {name}: 0/{total} inputs" + (f" ({done} already done)" if done else "") + "; starting")

    def stop() -> None:  # on a signal: commit what is finished, then end the pipeline (even if the commit fails)
        try:
            commits.close()
        finally:
            stop_datasets()

    signum = run_until_signal(collect, stop)
    if progress:
        show(line(), final=True)
    if not signum and commits.processed != total:
        raise RuntimeError(f"pipeline returned {commits.processed} rows for {total} inputs")
    return signum


def stop_datasets() -> None:
    """Shut down this driver's running Ray Data executions: their tasks and actors stop, and a
    thread iterating over one gets the end of its stream. Ray 2.60 has no public call for this;
    its executor is a thread of the driver (if that changes, the caller waits for its work to
    end by itself)."""
    try:
        from ray.data._internal.execution.streaming_executor import StreamingExecutor  # ray 2.60
    except ImportError:
        return
    for t in threading.enumerate():
        if isinstance(t, StreamingExecutor):
            t.shutdown(force=True)


def _cause(e: BaseException) -> str:
    """The innermost cause of a (Ray-wrapped) exception, as 'Type: message' on one line."""
    while True:
        inner = getattr(e, "cause", None) or e.__cause__
        if not isinstance(inner, BaseException) or inner is e:
            break
        e = inner
    if isinstance(e, OSError) and e.strerror:
        return f"{type(e).__name__}: [Errno {e.errno}] {e.strerror}"
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:500]

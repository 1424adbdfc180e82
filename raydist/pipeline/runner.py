"""The one pipeline runner behind `embed` and `compress`: inputs -> Ray Data (decode tasks ->
an actor pool that runs the model -> Parquet writer tasks) -> a committed run in the output
directory. Reruns process only what is missing.

What differs between embed and compress is a `Spec`: its actor class, how the actor's wide rows
split into output tables, and which tables' ids count as done. `raydist.pipeline.embed` and
`raydist.pipeline.compress` each define one."""

from __future__ import annotations

import datetime
import json
import platform
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import pyarrow as pa
import ray

from raydist.config import OutputConfig, ResourceConfig
from raydist.io.inputs import resolve_inputs
from raydist.io.schema import SCHEMA_VERSION
from raydist.io.store import STAGING, RunStore
from raydist.pipeline.decode import decode_batch
from raydist.pipeline.write import write_parts


@dataclass
class RunSummary:
    out: str
    inputs: int = 0
    already_done: int = 0
    retried: int = 0  # inputs with an earlier error row processed again (--retry-errors)
    ok: int = 0
    failed: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0
    run_id: str | None = None
    skipped_extensions: dict[str, int] = field(default_factory=dict)
    source_bytes: int = 0  # encoded size of the inputs processed
    pcm16_bytes: float = 0.0  # the same audio as 16-bit PCM at the source rate and channels
    payload_bytes: int = 0  # compress: codes + scales (raydist.codec.format.payload_bytes)
    written_bytes: dict[str, int] = field(default_factory=dict)  # per table, Parquet bytes

    @property
    def speed(self) -> float:
        """Audio seconds processed per wall-clock second."""
        return self.audio_s / self.wall_s if self.wall_s else 0.0

    def line(self, verb: str = "embedded") -> str:
        skipped = (
            f", {sum(self.skipped_extensions.values())} non-audio files not listed ({self.skipped_extensions})"
            if self.skipped_extensions
            else ""
        )
        retried = f", {self.retried} retried" if self.retried else ""
        return (
            f"{verb} {self.inputs} inputs into {self.out}: {self.ok} ok, {self.failed} failed, "
            f"{self.already_done} already done{retried}; {self.audio_s / 3600:.3f} h of audio in {self.wall_s:.1f} s "
            f"({self.speed:.0f} audio-s/s){skipped}"
        )


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


def _versions() -> dict[str, str]:
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
    todo: pa.Table,
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
    ray.data.DataContext.get_current().raise_original_map_exception = True  # report the real cause of a failure
    # one block per decode batch, cut on the driver: streaming starts at once (no all-to-all)
    ds = ray.data.from_arrow([todo.slice(i, cfg.decode_batch) for i in range(0, todo.num_rows, cfg.decode_batch)])
    ds = ds.map_batches(
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
    """Run `spec` over `inputs` into `out` (Ray must be initialised). `configs` (output_config and
    the spec's own, e.g. segment_config) go to the actors and writers and into the manifest.
    Safe to rerun: it finishes an interrupted commit, then processes only inputs not yet
    committed; `retry_errors` also processes again inputs whose only record is an error row."""
    from raydist.model.checkpoint import load_model  # torch: the driver only, never the writers

    start = time.time()
    so = storage_options or {}
    model = load_model(model_uri, storage_options=so)  # fail fast on a bad checkpoint
    listed = resolve_inputs(inputs, so)
    store = RunStore(out, so)
    store.check_writable()
    store.recover()
    results = tuple(t for t in spec.done_tables if t != "errors")
    done = store.done_ids(results if retry_errors else spec.done_tables)
    table = listed.table
    todo = table.filter(pa.array([i not in done for i in table.column("id").to_pylist()])) if done else table
    retried = store.done_ids(("errors",)) & set(todo.column("id").to_pylist()) if retry_errors else set()
    summary = RunSummary(
        out,
        inputs=len(listed),
        already_done=len(listed) - todo.num_rows,
        retried=len(retried),
        skipped_extensions=listed.skipped,
    )
    if todo.num_rows == 0:
        summary.wall_s = time.time() - start
        return summary
    run_id = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    recorded = {  # every config of the run: for the actors, the writers' metadata and the manifest
        "feature_config": model.features.to_dict(),
        "model_config": model.vae.cfg.to_dict(),
        "resource_config": resources.to_dict(),
        **configs,
    }
    metadata = {
        "raydist.schema_version": SCHEMA_VERSION,
        "raydist.run_id": run_id,
        "raydist.model_sha256": model.checkpoint_id,
        **{f"raydist.{k}": json.dumps(v) for k, v in recorded.items()},
    }
    ds = build_dataset(
        spec,
        todo,
        model_uri,
        resources,
        recorded,
        store.uri(STAGING, run_id),
        run_id,
        model.features.sample_rate,
        metadata,
        so,
    )
    files: dict[str, list[str]] = {}
    seen: set[str] = set()
    try:
        _collect(ds, spec.name, summary, files, seen, todo.num_rows, start, progress)
    except Exception as e:  # a stage failed for good (storage full, refused writes, lost cluster)
        raise RunFailed(
            f"run {run_id} stopped after {summary.ok + summary.failed} of {todo.num_rows} inputs: {_cause(e)}. "
            f"Nothing from this run was committed and earlier runs are intact; run the same command again "
            f"to process what is missing."
        ) from e
    if summary.ok + summary.failed != todo.num_rows:
        raise RuntimeError(
            f"pipeline returned {summary.ok + summary.failed} rows for {todo.num_rows} inputs; nothing committed"
        )
    summary.wall_s, summary.run_id = time.time() - start, run_id
    manifest = {
        "run_id": run_id,
        "schema_version": SCHEMA_VERSION,
        "files": files,
        "removed": {},
        "model": {"uri": model_uri, "sha256": model.checkpoint_id, "vae_sha256": model.vae_id, "step": model.step},
        **recorded,
        "retry_errors": retry_errors,
        "counts": {"inputs": todo.num_rows, "ok": summary.ok, "failed": summary.failed, "retried": len(retried)},
        "audio_s": summary.audio_s,
        "bytes": {
            "source": summary.source_bytes,
            "pcm16": summary.pcm16_bytes,
            "payload": summary.payload_bytes,
            "written": summary.written_bytes,
        },
        "wall_s": summary.wall_s,
        "versions": _versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    try:
        if retried:  # the retried inputs' old error rows go: each input keeps at most its latest one
            staged, manifest["removed"]["errors"] = store.stage_without("errors", retried, run_id)
            files.setdefault("errors", []).extend(staged)
        store.commit(manifest)
    except Exception as e:
        raise RunFailed(
            f"commit of run {run_id} failed: {_cause(e)}. Run the same command again: a run whose manifest "
            f"was written is rolled forward, otherwise its inputs are processed again."
        ) from e
    return summary


class RunFailed(RuntimeError):
    """A pipeline run stopped before its commit; the output holds only earlier committed runs."""


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


def _collect(
    ds, name: str, summary: RunSummary, files: dict, seen: set, total: int, start: float, progress: bool
) -> None:
    """Consume the pipeline's per-part summaries into `summary` and `files`, with progress lines."""
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for row in batch.to_pylist():
            if row["part"] in seen:  # a retried task's summary: its file was overwritten in place
                continue
            seen.add(row["part"])
            for t, size in zip(row["tables"], row["written_bytes"]):
                files.setdefault(t, []).append(row["part"])
                summary.written_bytes[t] = summary.written_bytes.get(t, 0) + size
            for k in ("ok", "failed", "audio_s", "source_bytes", "pcm16_bytes", "payload_bytes"):
                setattr(summary, k, getattr(summary, k) + row[k])
            if progress:
                el = time.time() - start
                print(
                    f"raydist {name}: {summary.ok + summary.failed}/{total} inputs ({summary.failed} failed), "
                    f"{summary.audio_s / 3600:.3f} h audio, {summary.audio_s / max(el, 1e-9):.0f} audio-s/s",
                    file=sys.stderr,
                )

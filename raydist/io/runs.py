"""Run records and heartbeats: how runs on one output know which of them are alive.

A run's record (`_runs/<run>.json`) says who drives it (host, pid), its state and, refreshed by
a `Heartbeat` thread every lease/4, when it was last seen. Another run treats it as dead when its
state is not "running", when its driver ran on the same host and is gone, or when its heartbeat
is older than its lease (hosts' clocks must agree to well within the lease, 60 s by default)."""

from __future__ import annotations

import datetime
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from raydist.io.store import RunStore

LEASE_S = 60.0  # default lease; each record carries its own


def new_run_id() -> str:
    """A run's id: its UTC start time, sortable, and 6 random hex digits."""
    import uuid

    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def is_alive(record: dict[str, Any] | None) -> bool:
    """Whether the run of `record` may still write: it is running, and its driver is alive on
    this host, or (on another host) its heartbeat is younger than its lease."""
    if not record or record.get("state") != "running" or "heartbeat" not in record:
        return False
    driver = record.get("driver", {})
    if driver.get("host") == socket.gethostname() and driver.get("pid"):
        return pid_alive(int(driver["pid"]))
    return time.time() - float(record["heartbeat"]) < float(record.get("lease_s", LEASE_S))


class Heartbeat:
    """Keeps a run's record fresh from a daemon thread, so other runs know it is alive."""

    def __init__(self, store: RunStore, record: dict[str, Any], every_s: float):
        self.store, self.record, self.every_s = store, record, every_s
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self.beat()
        self.thread = threading.Thread(target=self._run, name="raydist-heartbeat", daemon=True)
        self.thread.start()

    def update(self, **fields: Any) -> None:
        with self.lock:
            self.record.update(fields)
        self.beat()

    def beat(self) -> None:
        with self.lock:
            self.record["heartbeat"] = time.time()
            self.store.write_record(self.record)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.beat()
            except Exception as e:  # noqa: BLE001 - a missed beat is retried; the lease allows several
                print(f"raydist: heartbeat of run {self.record['run_id']} failed: {type(e).__name__}: {e}")

    def stop(self, **fields: Any) -> None:
        self._stop.set()
        self.thread.join()
        self.update(**fields)


def driver_info() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe(store: RunStore) -> list[dict[str, Any]]:
    """One row per run in `store`, oldest first: what `raydist runs` prints. Counts come from the
    commit log (the truth); state from the run's record, "died" for a running record whose driver
    or heartbeat is gone."""
    per_run: dict[str, list[dict[str, Any]]] = {}
    for e in store.log():
        per_run.setdefault(e["run_id"], []).append(e)
    rows = []
    for rec in store.records():
        entries = per_run.get(rec["run_id"], [])
        state = rec.get("state", "committed" if "files" in rec else "?")
        if state == "running" and not is_alive(rec):
            state = "died"
        counts = {k: sum(e.get("counts", {}).get(k, 0) for e in entries) for k in ("ok", "failed", "dropped")}
        rows.append(
            {
                "run": rec["run_id"],
                "kind": rec.get("kind", "embed" if "segment_config" in rec else "compress"),
                "state": state,
                "started": str(rec.get("created", ""))[:19].replace("T", " "),
                "commits": len(entries),
                **counts,
                "audio_h": sum(e.get("audio_s", 0.0) for e in entries) / 3600,
                "last_commit": str(entries[-1].get("created", ""))[:19].replace("T", " ") if entries else "",
            }
        )
    return rows

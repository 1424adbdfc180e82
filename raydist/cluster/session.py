"""Connecting to Ray: an embedded local Ray by default, or a cluster (`auto` or an address).

A local Ray started here is recorded (its processes and this driver) under the temp folder. When
a driver is killed (SIGKILL: no chance to shut Ray down), most of its Ray processes follow it, but
Ray's per-node agents (`ray::DashboardAgent`, `ray::RuntimeEnvAgent`) stay; the next local start
stops what a dead driver left (`reap_orphans`)."""

from __future__ import annotations

import atexit
import json
import os
import signal
import tempfile
import time
from typing import Any

import ray
import torch  # noqa: F401  # import torch before ray: avoids a oneMKL load failure seen in Ray jobs

RECORDS = os.path.join(tempfile.gettempdir(), "raydist-local-ray")


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start (or join) Ray once per process. address None: the cluster of the Ray job this runs in
    (RAY_ADDRESS), else a new local Ray on this machine."""
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"log_to_driver": True, "include_dashboard": False}
    address = address or os.environ.get("RAY_ADDRESS")  # inside a Ray job: join its cluster
    if address:
        kwargs = {"address": address}
        os.environ.setdefault("RAY_AUTH_MODE", "token")  # Ray 2.60 clusters want the auth token
    else:
        reap_orphans()
        # Ray Train's controller polls its workers every 2 s by default, and a run's end waits for
        # the next poll: 0.5 s took 3 s off every local `raydist train` (bench/bench_train.py).
        # The local Ray's processes inherit this environment.
        os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
        # Two Ray Train services a Ray on this machine has no use for, each an extra process (or
        # callbacks) starting beside the first training step: the watcher for cloud nodes' spot
        # preemption notices, and metrics for a dashboard a local Ray does not run. Without them a
        # `raydist train` command took 2.2 s less here (median of 3 alternating runs).
        os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
        os.environ.setdefault("RAY_TRAIN_METRICS_ENABLED", "0")
        if num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
    ray.init(**kwargs)
    if not address:
        _record_local_ray()
    from raydist.console import log_path

    if log_path():
        where = "a local Ray" if not address else f"Ray at {address}"
        print(f"raydist: running on {where}; its logs are in {log_path()} (--verbose shows them here)")


def started_local() -> bool:
    """Whether this process started the Ray it is connected to (a local one that ends with it)."""
    return ray.is_initialized() and os.path.exists(_record_path(os.getpid()))


def shutdown() -> None:
    """Stop this process's Ray (a local one ends with it) and forget its record. From here on a
    call into Ray raises instead of starting a new local Ray: the thread of a pipeline abandoned on
    SIGINT/SIGTERM still runs, and its next call did start one (once, in CI, the command then
    exited 1 instead of 130)."""
    import ray._private.auto_init_hook as auto_init  # ray 2.60

    auto_init.enable_auto_connect = False
    ray.shutdown()
    _forget()


def cluster_has_gpus() -> bool:
    return ray.cluster_resources().get("GPU", 0) > 0


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks (tells a pid from a later one that reuses it);
    None when there is no such process or it has exited and only its zombie entry is left (an
    orphan's zombie waits for PID 1 to reap it, which a loaded machine can take a while to do)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def running(pid: int, started: int | None) -> bool:
    """Whether the process `pid` that started at `started` still runs (exited and zombies do not)."""
    return started is not None and _start_time(pid) == started


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _record_path(pid: int) -> str:
    return os.path.join(RECORDS, f"{pid}.json")


def _record_local_ray() -> None:
    me = os.getpid()
    procs = [[p, _start_time(p)] for p in _descendants(me)]
    if not procs:  # not Linux, or nothing to record
        return
    os.makedirs(RECORDS, exist_ok=True)
    with open(_record_path(me), "w") as f:
        json.dump({"driver": [me, _start_time(me)], "procs": procs}, f)
    atexit.register(_forget)


def _forget() -> None:
    try:
        os.remove(_record_path(os.getpid()))
    except OSError:
        pass


def reap_orphans() -> int:
    """Stop the Ray processes of local Rays whose raydist driver is gone; returns how many."""
    if not os.path.isdir(RECORDS):
        return 0
    stopped = 0
    for name in os.listdir(RECORDS):
        path = os.path.join(RECORDS, name)
        try:
            with open(path) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            continue
        pid, started = rec["driver"]
        if running(pid, started):  # that driver is still running
            continue
        procs = [(p, st) for p, st in rec["procs"] if running(p, st)]
        left = [p for p, _ in procs]
        # The agents ignore SIGTERM once their raylet is gone. A SIGKILLed process can still take
        # seconds to exit on a loaded machine (its memory is torn down): wait for it, within reason.
        for sig, wait_s in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 60.0)):
            for p, st in procs:
                if running(p, st):
                    try:
                        os.kill(p, sig)
                    except OSError:
                        pass
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and any(running(p, st) for p, st in procs):
                time.sleep(0.1)
        stopped += len(left)
        if left:
            print(f"raydist: stopped {len(left)} Ray processes left by a killed raydist (pid {pid})")
        try:
            os.remove(path)
        except OSError:
            pass
    return stopped

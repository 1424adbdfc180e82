"""Submitting raydist jobs to a Ray cluster through its job server (JobSubmissionClient).

The job runs `python jobs/<job>.py OPTIONS` from this checkout, uploaded as the runtime_env
working_dir (virtual environments, outputs and caches excluded), so the cluster runs the code
you have here.
"""

from __future__ import annotations

import os
import shlex
import time
from typing import Any

from raydist.errors import RaydistError

JOBS = ("train", "embed", "compress")
EXCLUDES = [".venv", ".git", "**/__pycache__", "demo-out", "runs", ".pytest_cache", ".ruff_cache", "*.egg-info"]
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


class SubmitError(RaydistError, ValueError):
    pass


STOP_GRACE_S = 60  # seconds between `jobs stop`'s SIGTERM and its SIGKILL


def project_root() -> str:
    """The checkout that holds jobs/ and raydist/."""
    import raydist

    root = os.path.dirname(os.path.dirname(os.path.abspath(raydist.__file__)))
    if not os.path.isdir(os.path.join(root, "jobs")):
        raise SubmitError(f"jobs/ not found beside the raydist package ({root}): submit from a raydist checkout")
    return root


def client(address: str):
    """A job client for `address`; SubmitError naming the address when nothing answers there."""
    os.environ.setdefault("RAY_AUTH_MODE", "token")  # Ray 2.60 clusters use token auth
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise SubmitError(
            f"no Ray job server answers at {address} ({type(e).__name__}). Is the cluster up (`ray up "
            f"cluster.yaml`) and its dashboard forwarded (`ray dashboard cluster.yaml`)? Check --address."
        ) from None


def _ask(address: str, job_id: str, what: str):
    """Run one job-server call; SubmitError naming the job when the server refuses it."""
    c = client(address)
    try:
        return getattr(c, what)(job_id)
    except RuntimeError as e:
        raise SubmitError(f"job {job_id} at {address}: {str(e).splitlines()[0][:300]}") from None


def submit(job: str, address: str, args: list[str], env: dict[str, str] | None = None, python: str = "python") -> str:
    """Submit jobs/<job>.py with `args`; return the job id."""
    if job not in JOBS:
        raise SubmitError(f"unknown job {job!r}; choose from {JOBS}")
    runtime_env: dict[str, Any] = {
        "working_dir": project_root(),
        "excludes": EXCLUDES,
        # `ray job stop` sends SIGTERM, then SIGKILL after this long (Ray's default, 3 s, can cut a
        # commit short): the job commits what is finished and exits 143 well within it
        "env_vars": {"RAY_JOB_STOP_WAIT_TIME_S": str(STOP_GRACE_S), **(env or {})},
    }
    entrypoint = shlex.join([python, f"jobs/{job}.py", *args])
    c = client(address)
    for attempt in range(30):  # a just-started head's job agent may not be up yet
        try:
            return c.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
        except RuntimeError as e:
            if "No available agent" not in str(e) or attempt == 29:
                raise
            time.sleep(2)
    raise AssertionError("unreachable")


def wait(address: str, job_id: str, timeout_s: float = 3600, poll_s: float = 2.0) -> str:
    """Block until the job ends; return its final status."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        state = status(address, job_id)
        if state in TERMINAL:
            return state
        time.sleep(poll_s)
    raise SubmitError(
        f"job {job_id} still running after {timeout_s:.0f} s; it goes on: `raydist jobs status {job_id}`, "
        f"`raydist jobs stop {job_id}`"
    )


def follow(address: str, job_id: str, write=print) -> str:
    """Pass the job's log to `write` as it is written; return the job's final status."""
    import asyncio

    async def tail() -> None:
        async for chunk in client(address).tail_job_logs(job_id):
            write(chunk, end="")

    asyncio.run(tail())
    return wait(address, job_id, timeout_s=60)


def status(address: str, job_id: str) -> str:
    return str(_ask(address, job_id, "get_job_status")).split(".")[-1]


def logs(address: str, job_id: str) -> str:
    return _ask(address, job_id, "get_job_logs")


def stop(address: str, job_id: str) -> bool:
    return _ask(address, job_id, "stop_job")

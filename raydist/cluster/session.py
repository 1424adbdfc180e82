"""Connecting to Ray: an embedded local Ray by default, or a cluster (`auto` or an address)."""

from __future__ import annotations

import os
from typing import Any

import ray
import torch  # noqa: F401  # import torch before ray: avoids a oneMKL load failure seen in Ray jobs


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
    elif num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    ray.init(**kwargs)


def cluster_has_gpus() -> bool:
    return ray.cluster_resources().get("GPU", 0) > 0

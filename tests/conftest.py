"""Shared fixtures: one Ray session for the whole run, a moto S3 endpoint, a small checkpoint."""

from __future__ import annotations

import os

# One auth mode for every Ray this test session starts or joins (the local session, the multi-node
# cluster, job clients, subprocesses): Ray reads it once per process, before any of them exists.
os.environ["RAY_AUTH_MODE"] = "token"

import pytest  # noqa: E402
import torch  # noqa: E402
from kit import moto_s3

from raydist.config import FeatureConfig, LossConfig, ModelConfig
from raydist.model.checkpoint import save_checkpoint
from raydist.model.vae import AudioVAE

SMALL_MODEL = ModelConfig(hidden=32)


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for every test that needs it (2 CPUs, like CI)."""
    import ray

    from raydist.cluster.session import init_ray

    init_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3():
    """moto's S3 server on 127.0.0.1 with bucket 'raydist-test'; yields fsspec storage options."""
    with moto_s3("raydist-test") as options:
        yield options


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> str:
    """An untrained but valid small checkpoint (seeded): enough for pipeline tests."""
    torch.manual_seed(0)
    d = str(tmp_path_factory.mktemp("ckpt"))
    save_checkpoint(d, AudioVAE(SMALL_MODEL), FeatureConfig(), LossConfig(), step=0, epoch=0)
    return os.path.join(d, "model.pt")

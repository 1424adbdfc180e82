"""Clusters: cluster.yaml against Ray's schema, and a real multi-node Ray cluster on this machine
(head + 2 nodes) running submitted train (SPREAD, checkpoints on S3, resume) and embed jobs that
read and write S3 (moto's server on 127.0.0.1). No node reads another node's disk."""

from __future__ import annotations

import os
import re
import sys
import time

import pytest
import yaml
from kit import local_cluster

from raydist.cluster import submit as sub
from raydist.demo.corpus import write_corpus
from raydist.io.store import read_table
from raydist.model.checkpoint import read_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cluster_yaml_passes_rays_schema_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load(open(os.path.join(ROOT, "cluster.yaml")))
    validate_config(prepare_config(raw))
    types = raw["available_node_types"]
    assert types[raw["head_node_type"]]["resources"] == {"CPU": 0}  # the head runs no heavy work
    assert types["gpu_worker"]["min_workers"] == 0 and types["gpu_worker"]["resources"]["GPU"] == 1
    assert all("IamInstanceProfile" in t["node_config"] for t in types.values())
    assert any("pip install" in c and "raydist" in c for c in raw["setup_commands"])
    assert "SecurityGroupIds" not in str(raw) and "8265" not in str(
        {k: v for k, v in raw.items() if k not in ("file_mounts", "provider")}
    )
    assert "0.0.0.0" not in str(raw.get("head_start_ray_commands", ""))  # no dashboard bound to every interface


def test_cluster_yaml_opens_no_port_but_ssh_to_the_internet():
    raw = yaml.safe_load(open(os.path.join(ROOT, "cluster.yaml")))
    rules = raw["provider"]["security_group"]["IpPermissions"]
    public = [
        (r["IpProtocol"], r["FromPort"], r["ToPort"])
        for r in rules
        if any(rng.get("CidrIp") == "0.0.0.0/0" for rng in r.get("IpRanges", []))
        or any(rng.get("CidrIpv6") == "::/0" for rng in r.get("Ipv6Ranges", []))
    ]
    assert public == [("tcp", 22, 22)]


def test_cluster_yaml_errors_are_caught():
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load(open(os.path.join(ROOT, "cluster.yaml")))
    raw["available_node_types"]["gpu_worker"]["min_workers"] = "zero"
    with pytest.raises(Exception, match="is not of type 'integer'"):
        validate_config(prepare_config(raw))


def _run(address: str, job: str, args: list[str]) -> str:
    env = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    job_id = sub.submit(job, address, args, env=env, python=sys.executable)
    status = sub.wait(address, job_id, timeout_s=600)
    logs = sub.logs(address, job_id)
    assert status == "SUCCEEDED", logs[-3000:]
    return logs


@pytest.mark.slow
def test_multi_node_train_resume_and_embed_on_s3(s3, tmp_path):
    import s3fs

    fs = s3fs.S3FileSystem(key=s3["key"], secret=s3["secret"], endpoint_url=s3["endpoint_url"])
    local = write_corpus(str(tmp_path / "corpus"), n_clips=30, seed=5)
    fs.put(str(tmp_path / "corpus"), "raydist-test/mn/corpus", recursive=True)
    assert fs.exists("raydist-test/mn/corpus/manifest.csv") and os.path.exists(local)
    endpoint = ["--endpoint-url", s3["endpoint_url"]]
    run_out = "s3://raydist-test/mn/run"

    def train(epochs: int, *extra: str) -> list[str]:
        return [
            "s3://raydist-test/mn/corpus/manifest.csv",
            "--out",
            run_out,  # --workers left at 0: one worker per node that has CPUs (the head has none)
            "--epochs",
            str(epochs),
            "--placement",
            "SPREAD",
            "--batch-size",
            "16",
            *endpoint,
            *extra,
        ]

    with local_cluster(worker_nodes=2) as cluster:
        logs = _run(cluster["dashboard"], "train", train(2))
        assert "raydist: 2 workers on 2 nodes" in logs, logs[-2000:]
        state, _ = read_checkpoint(f"{run_out}/model.pt", storage_options=s3)
        assert state["metrics"]["nodes"] == 2  # SPREAD: one worker on each node
        assert state["epoch"] == 2 and fs.exists("raydist-test/mn/run/run")  # Ray Train's checkpoints on S3

        _run(cluster["dashboard"], "train", train(3, "--resume"))
        resumed, _ = read_checkpoint(f"{run_out}/model.pt", storage_options=s3)
        assert resumed["epoch"] == 3 and resumed["step"] == state["step"] * 3 // 2

        emb = "s3://raydist-test/mn/emb"
        _run(
            cluster["dashboard"],
            "embed",
            ["s3://raydist-test/mn/corpus/audio", "--model", f"{run_out}/model.pt", "--out", emb, *endpoint],
        )
        # `raydist jobs stop` (SIGTERM, then SIGKILL after a grace period) on a running embed job:
        # it commits what is finished, says so and exits 143; a rerun does only the rest
        uris = read_table(emb, "clips", s3).column("uri").to_pylist()
        rows = "uri,id\n" + "".join(f"{u},big{i:05d}\n" for i, u in enumerate(uris * 200))
        fs.pipe("raydist-test/mn/big.csv", rows.encode())
        big, n = "s3://raydist-test/mn/big", len(uris) * 200
        env = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
        args = ["s3://raydist-test/mn/big.csv", "--model", f"{run_out}/model.pt", "--out", big, "--commit-seconds", "2"]
        job_id = sub.submit("embed", cluster["dashboard"], [*args, *endpoint], env=env, python=sys.executable)
        deadline = time.time() + 300
        while not fs.glob("raydist-test/mn/big/_log/*.json"):
            assert sub.status(cluster["dashboard"], job_id) in ("PENDING", "RUNNING") and time.time() < deadline
            time.sleep(0.5)
            fs.invalidate_cache()
        assert sub.stop(cluster["dashboard"], job_id)
        assert sub.wait(cluster["dashboard"], job_id, timeout_s=120) == "STOPPED"
        logs = sub.logs(cluster["dashboard"], job_id)
        found = re.search(r"interrupted by SIGTERM: (\d+) of (\d+) inputs are committed", logs)
        assert found and int(found.group(2)) == n, logs[-3000:]
        assert read_table(big, "clips", s3).num_rows == int(found.group(1)) > 0
    clips = read_table(emb, "clips", storage_options=s3)
    assert clips.num_rows == 30 and all(u.startswith("s3://") for u in clips.column("uri").to_pylist())

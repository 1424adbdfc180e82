"""The test kit (not shipped in the package): synthetic audio files, a local S3 endpoint (moto's
server on 127.0.0.1), a fault-injecting HTTP proxy, a multi-node Ray cluster on this machine,
Ray actor lookup for fault tests, and a small trained checkpoint."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import soundfile as sf

from raydist.audio import synth

FORMATS = {  # extension -> (soundfile format, subtype)
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "opus": ("OGG", "OPUS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}


def write_tone(
    path: str, freq: float = 440.0, seconds: float = 1.0, sr: int = 16000, channels: int = 1, fmt: str | None = None
) -> str:
    """Write a sine tone file (format from the extension unless `fmt` is given)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    ext = fmt or os.path.splitext(path)[1].lstrip(".").lower()
    container, subtype = FORMATS[ext]
    x = np.repeat(synth.tone(freq, seconds, sr)[:, None], channels, axis=1)
    sf.write(path, x, sr, format=container, subtype=subtype)
    return path


def dominant_freq(x: np.ndarray, sr: int) -> float:
    """Frequency (Hz) of the largest FFT bin of a Hann-windowed signal."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def moto_s3(bucket: str = "raydist-test") -> Iterator[dict]:
    """A real HTTP S3 endpoint on 127.0.0.1 with one bucket; yields fsspec storage options.
    Sets the AWS_* environment so Ray workers and child processes reach it too."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
        yield {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
    finally:
        server.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def quick_checkpoint(
    directory: str,
    manifest: str,
    steps: int = 150,
    hidden: int = 32,
    seed: int = 0,
    latent_dim: int = 32,
    batch_size: int = 16,
) -> str:
    """A small checkpoint that has learnt something, for codec and probe tests: the shipped
    in-process trainer (raydist.train.local: the Ray loop's step, loss, clipping and optimiser)
    run for `steps` steps on every clip of a manifest, with a small model and KL warm-up over
    half the steps. Returns model.pt's path."""
    from raydist.config import LossConfig, ModelConfig, TrainConfig
    from raydist.train.local import train_local

    cfg = TrainConfig(workers=1, batch_size=batch_size, val_fraction=0.0, seed=seed)
    model_cfg = ModelConfig(hidden=hidden, latent_dim=latent_dim)
    return train_local(
        [manifest], directory, cfg, model_cfg, loss_cfg=LossConfig(kl_warmup_steps=steps // 2), steps=steps
    )


@contextmanager
def local_cluster(worker_nodes: int = 2, timeout_s: float = 120, head_cpus: int = 0) -> Iterator[dict]:
    """A real multi-node Ray cluster on this machine: `ray start --head` (`head_cpus` CPUs, job
    server on) plus `worker_nodes` x `ray start --address` with 1 CPU each, all under a private
    temp dir.
    Yields {"gcs": address, "dashboard": job server URL}. Teardown kills only the processes whose
    command line names that temp dir (`ray stop` would kill every Ray on the machine)."""
    import shutil
    import subprocess
    import sys
    import tempfile
    import time

    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    tmp = tempfile.mkdtemp(prefix="rdc")  # short: Ray's socket paths must stay under 107 bytes
    port, dashboard = free_port(), free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    common = ["--disable-usage-stats", f"--dashboard-agent-listen-port={free_port()}"]
    try:
        # token auth: `ray start` needs ~/.ray/auth_token, which only ray.init creates on its own
        subprocess.run([ray_bin, "get-auth-token", "--generate"], check=True, env=env, capture_output=True)
        subprocess.run(
            [
                ray_bin,
                "start",
                "--head",
                f"--port={port}",
                f"--temp-dir={tmp}",
                f"--num-cpus={head_cpus}",
                "--include-dashboard=true",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dashboard}",
                *common,
            ],
            check=True,
            env=env,
            capture_output=True,
        )
        for _ in range(worker_nodes):
            subprocess.run(
                [
                    ray_bin,
                    "start",
                    f"--address=127.0.0.1:{port}",
                    "--num-cpus=1",
                    "--disable-usage-stats",
                    f"--dashboard-agent-listen-port={free_port()}",
                ],
                check=True,
                env=env,
                capture_output=True,
            )
        url = f"http://127.0.0.1:{dashboard}"
        _wait_job_server(url, time.time() + timeout_s)
        yield {"gcs": f"127.0.0.1:{port}", "dashboard": url}
    finally:
        _kill_matching(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


def cmdline(pid: int) -> str:
    """A process's command line, its arguments joined by spaces ("" once it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _kill_matching(marker: str) -> None:
    """SIGKILL every process whose command line contains `marker`."""
    import signal

    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        if marker in cmdline(int(pid)):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass


def _wait_job_server(url: str, deadline: float) -> None:
    import time

    from raydist.cluster.submit import client

    while True:
        try:
            client(url)  # checks the server's version, with the auth token
            return
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def ray_actors(class_contains: str) -> list[dict]:
    """This Ray session's actors whose class name contains `class_contains`, from the GCS actor
    table: ActorClassName, State, Pid, NumRestarts. Used to kill a worker process in fault tests."""
    import ray._private.state

    return [a for a in ray._private.state.actors().values() if class_contains in a["ActorClassName"]]


@contextmanager
def flaky_proxy(target: str, fail_every: int = 3, refuse_writes: str | None = None) -> Iterator[dict]:
    """An HTTP proxy on 127.0.0.1 in front of an S3 endpoint that answers every `fail_every`-th
    request with 503 SlowDown (0: never), and every PUT or POST whose path contains
    `refuse_writes` with 507 (a store that has run out of space). Yields a dict: endpoint_url,
    requests and failed (counts)."""
    import http.client
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import urlparse

    up = urlparse(target)
    state: dict = {"requests": 0, "failed": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline().strip():  # trailers
                            pass
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
            self.send_response(status)
            length = str(len(body))
            for k, v in headers:
                if k.lower() == "content-length" and self.command == "HEAD":
                    length = v  # HEAD: the size of the object, with no body
                elif k.lower() not in ("transfer-encoding", "content-length", "connection"):
                    self.send_header(k, v)
            self.send_header("Content-Length", length)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str) -> None:
            xml = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{code}</Message></Error>'
            with lock:
                state["failed"] += 1
            self._reply(status, xml.encode(), [("Content-Type", "application/xml")])

        def _any(self) -> None:
            body = self._body()
            with lock:
                state["requests"] += 1
                n = state["requests"]
            if refuse_writes and refuse_writes in self.path and self.command in ("PUT", "POST"):
                return self._error(507, "InsufficientStorage")
            if fail_every and n % fail_every == 0:
                return self._error(503, "SlowDown")
            headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
            headers["Content-Length"] = str(len(body))
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                self._reply(resp.status, resp.read(), resp.getheaders())
            finally:
                conn.close()

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["endpoint_url"] = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()

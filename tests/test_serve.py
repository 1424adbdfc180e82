"""`raydist serve` on a real server: the CLI started as a subprocess (its own local Ray, Ray
Serve's HTTP proxy on a free port, bound beyond loopback with a token), asked over HTTP with
`requests`; its page driven by Debian's chromium (tests/test_page.py). Stopped with SIGINT by the
last test, which checks the drain."""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow.compute as pc
import pytest
import requests
import soundfile as sf
from kit import write_tone

from raydist.io.store import read_table
from raydist.pipeline.embed import embed
from raydist.search.index import build_index

pytestmark = pytest.mark.slow
TOKEN = "test-token-1234"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_MB = 2.0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """Tones in three labels, in several formats, rates and channel counts; a manifest."""
    root = tmp_path_factory.mktemp("serve-corpus")
    rows = []
    for i in range(12):
        label = ("low", "mid", "high")[i % 3]
        freq = {"low": 180, "mid": 700, "high": 2400}[label] * (1 + 0.04 * i)
        ext, sr, ch = [("wav", 16000, 1), ("flac", 44100, 2), ("ogg", 22050, 1)][i % 3]
        path = write_tone(str(root / f"c{i:02d}.{ext}"), freq=freq, seconds=1.0 + 0.2 * i, sr=sr, channels=ch)
        rows.append((path, f"c{i:02d}", label))
    manifest = root / "manifest.csv"
    manifest.write_text("uri,id,label\n" + "".join(f"{u},{i},{lab}\n" for u, i, lab in rows))
    return {"root": str(root), "rows": rows, "manifest": str(manifest)}


@pytest.fixture(scope="module")
def emb(corpus, checkpoint, ray_session, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("serve-emb") / "emb")
    embed([corpus["manifest"]], out, checkpoint, progress=False)
    return out


@pytest.fixture(scope="module")
def server(emb, checkpoint, tmp_path_factory):
    """`raydist serve` bound to 0.0.0.0 with a token; yields its URL and process."""
    idx = str(tmp_path_factory.mktemp("serve-idx") / "idx")
    build_index(emb, idx)
    port = _port_outside_rays_ranges()
    args = ["serve", "--model", checkpoint, "--index", idx, "--host", "0.0.0.0", "--port", str(port)]
    args += ["--max-mb", str(MAX_MB), "--max-batch", "8"]
    log = open(tmp_path_factory.mktemp("serve-log") / "console.txt", "w+")
    env = {**os.environ, "RAYDIST_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "raydist.cli", *args], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while True:
        assert proc.poll() is None, f"raydist serve exited {proc.returncode}: {_read(log)}"
        try:
            if requests.get(f"{url}/health", headers=AUTH, timeout=5).status_code == 200:
                break
        except requests.RequestException:  # not listening yet, or the app not deployed yet
            pass
        assert time.time() < deadline, f"raydist serve not up after 300 s: {_read(log)}"
        time.sleep(1)
    yield {"url": url, "proc": proc, "log": log, "idx": idx}
    if proc.poll() is None:
        proc.kill()
        proc.wait(60)


def _port_outside_rays_ranges() -> int:
    """A free port below the kernel's ephemeral range and above Ray's worker ports (10002-19999),
    which the server's own Ray, starting after this pick, could otherwise take first."""
    import random
    import socket

    for port in random.Random(os.getpid()).sample(range(20000, 32000), 200):
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port in 20000-32000")


def _read(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-3000:]


def post(server, path: str, data=None, **kw) -> requests.Response:
    return requests.post(
        f"{server['url']}{path}", data=data, headers={**AUTH, **kw.pop("headers", {})}, timeout=120, **kw
    )


def get(server, path: str, **kw) -> requests.Response:
    return requests.get(f"{server['url']}{path}", headers={**AUTH, **kw.pop("headers", {})}, timeout=120, **kw)


def _bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_health_names_the_model_and_the_index_and_docs_are_served(server, checkpoint):
    from raydist.model.checkpoint import load_model

    h = get(server, "/health").json()
    assert h["status"] == "ok" and h["model"]["checkpoint_sha256"] == load_model(checkpoint).checkpoint_id
    assert h["index"]["rows"] == 12 and h["index"]["level"] == "clips"
    assert get(server, "/docs").status_code == 200
    paths = get(server, "/openapi.json").json()["paths"]
    assert {"/embed", "/search", "/compress", "/decompress", "/clips/{clip_id}/audio", "/health"} <= set(paths)


def test_a_served_file_gets_exactly_the_rows_embed_wrote_for_it(server, emb, corpus):
    clips = read_table(emb, "clips")
    frames, segments = read_table(emb, "frames"), read_table(emb, "segments")
    for path, cid, _ in corpus["rows"][:3]:  # a mono WAV, a stereo 44.1 kHz FLAC, an OGG
        r = post(server, "/embed?frames=1", _bytes(path))
        assert r.status_code == 200, r.text
        got = r.json()
        row = clips.filter(pc.equal(clips.column("id"), cid)).to_pylist()[0]
        for key in ("embedding", "n_frames", "duration_s", "sample_rate", "channels", "format", "n_segments"):
            assert got["clip"][key] == row[key], key
        mine = frames.filter(pc.equal(frames.column("id"), cid)).to_pylist()[0]
        assert got["frames"]["mean"] == mine["mean"]
        theirs = segments.filter(pc.equal(segments.column("id"), cid)).to_pylist()
        assert [s["start_s"] for s in got["segments"]] == [s["start_s"] for s in theirs]
        assert [s["embedding"] for s in got["segments"]] == [s["embedding"] for s in theirs]


def test_search_by_audio_and_by_id_find_the_clip_itself_first(server, corpus):
    path, cid, label = corpus["rows"][4]
    by_audio = post(server, "/search?k=3", _bytes(path)).json()
    assert by_audio["hits"][0]["id"] == cid and by_audio["hits"][0]["distance"] < 1e-5
    by_id = post(server, f"/search?k=3&id={cid}").json()
    assert [h["id"] for h in by_id["hits"]] == [h["id"] for h in by_audio["hits"]]
    only = post(server, f"/search?k=12&id={cid}&where=label = 'high'").json()["hits"]
    assert len(only) == 4 and {h["label"] for h in only} == {"high"}
    assert post(server, "/search?k=3&id=no-such-clip").status_code == 404
    bad = post(server, f"/search?id={cid}&where=nope ===")
    assert bad.status_code == 400 and "where" in bad.json()["error"]
    assert post(server, f"/search?id={cid}&k=0").status_code == 400


def test_malformed_audio_is_a_400_with_the_decoders_message_and_the_replica_lives(server, corpus):
    good = _bytes(corpus["rows"][0][0])
    bodies = [b"not audio at all", good, b"RIFF\x00\x00\x00\x00WAVEjunk", good]
    with ThreadPoolExecutor(4) as pool:  # bad and good bodies in the same batches
        answers = list(pool.map(lambda b: post(server, "/embed", b), bodies))
    assert [a.status_code for a in answers] == [400, 200, 400, 200]
    assert "cannot decode" in answers[0].json()["error"] and "DecodeError" in answers[0].json()["error"]
    assert answers[1].json() == answers[3].json()
    empty = post(server, "/embed", b"")
    assert empty.status_code == 400 and "no body" in empty.json()["error"]
    assert post(server, "/embed", good).status_code == 200  # still serving


def test_a_body_over_the_limit_is_a_413_declared_or_streamed(server):
    big = b"\0" * int(MAX_MB * 1e6 + 1)
    r = post(server, "/embed", big)
    assert r.status_code == 413 and "limit" in r.json()["error"]
    streamed = post(server, "/embed", (big[i : i + 65536] for i in range(0, len(big), 65536)))  # chunked
    assert streamed.status_code == 413 and "limit" in streamed.json()["error"]


def test_a_request_past_its_deadline_is_a_504(server, corpus):
    r = post(server, "/embed?timeout_s=0.001", _bytes(corpus["rows"][1][0]))
    assert r.status_code == 504 and "longer than" in r.json()["error"]


def test_without_the_token_every_request_is_a_401(server, corpus):
    url = server["url"]
    for method, path in [("get", "/health"), ("get", "/metrics"), ("post", "/embed"), ("get", "/clips/c00/audio")]:
        r = getattr(requests, method)(f"{url}{path}", timeout=30)
        assert r.status_code == 401 and "token" in r.json()["error"], path
        wrong = getattr(requests, method)(f"{url}{path}", headers={"Authorization": "Bearer nope"}, timeout=30)
        assert wrong.status_code == 401
    assert requests.get(f"{url}/?token=wrong", timeout=30).status_code == 401
    with requests.Session() as s:  # the printed link: the token moves into a cookie
        page = s.get(f"{url}/?token={TOKEN}", timeout=30)
        assert page.status_code == 200 and page.url == f"{url}/" and "raydist" in page.text
        assert s.get(f"{url}/health", timeout=30).status_code == 200


def test_clip_audio_serves_indexed_ids_only(server, corpus, tmp_path):
    path, cid, _ = corpus["rows"][2]
    r = get(server, f"/clips/{cid}/audio")
    assert r.status_code == 200 and r.content == _bytes(path) and r.headers["content-type"] == "audio/ogg"
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFF secret")
    for bad in ["nope", str(secret), "..%2F..%2Fetc%2Fpasswd", "c00' OR '1'='1"]:
        r = get(server, f"/clips/{bad}/audio")
        assert r.status_code == 404 and b"secret" not in r.content, bad


def test_compress_then_decompress_gives_the_clip_back_at_its_rate_and_length(server, corpus):
    path, _, _ = corpus["rows"][1]  # stereo 44.1 kHz FLAC
    row = post(server, "/compress", _bytes(path)).json()
    dim = get(server, "/health").json()["model"]["latent_dim"]
    assert row["sample_rate"] == 44100 and len(base64.b64decode(row["codes"])) == row["n_frames"] * dim
    wav = post(server, "/decompress", json_body(row))
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    x, sr = sf.read(io.BytesIO(wav.content))
    assert sr == 44100 and len(x) == len(sf.read(path)[0])
    broken = {**row, "n_frames": row["n_frames"] + 5}
    r = post(server, "/decompress", json_body(broken))
    assert r.status_code == 400 and "decompress" in r.json()["error"]
    assert post(server, "/decompress", b"{not json").status_code == 400


def json_body(row: dict) -> bytes:
    import json

    return json.dumps(row).encode()


def test_metrics_count_requests_and_batches(server, corpus):
    good = _bytes(corpus["rows"][0][0])
    with ThreadPoolExecutor(16) as pool:
        assert {r.status_code for r in pool.map(lambda _: post(server, "/embed", good), range(32))} == {200}
    text = get(server, "/metrics").text
    counts = _samples(text, "raydist_batch_size", "embed")
    assert counts["count"] >= 32 and counts["sum"] >= 32
    assert counts["le_1"] < counts["count"], "16 clients at once: some encoder call took more than one request"
    line = [x for x in text.splitlines() if x.startswith('raydist_requests_total{route="/embed",status="200"}')]
    assert line and float(line[0].split()[-1]) >= 32


def _samples(text: str, name: str, call: str) -> dict:
    out = {}
    for line in text.splitlines():
        if line.startswith(f'{name}_count{{call="{call}"}}'):
            out["count"] = float(line.split()[-1])
        elif line.startswith(f'{name}_sum{{call="{call}"}}'):
            out["sum"] = float(line.split()[-1])
        elif line.startswith(f'{name}_bucket{{call="{call}",le="1.0"}}'):
            out["le_1"] = float(line.split()[-1])
    return out


def test_the_page_works_in_a_real_browser(server, corpus):
    from page import browse

    browse(server["url"], TOKEN, corpus["rows"][5])


def test_sigint_lets_requests_in_flight_finish_then_exits_130(server, corpus):
    """Last: stops the server."""
    good = _bytes(corpus["rows"][3][0])
    answers: list = []
    first = threading.Event()

    def one(_):
        r = post(server, "/embed", good)
        first.set()
        answers.append(r.status_code)

    with ThreadPoolExecutor(24) as pool:
        futures = [pool.submit(one, i) for i in range(24)]
        assert first.wait(120)
        server["proc"].send_signal(signal.SIGINT)
        for f in futures:
            f.result()
    assert answers == [200] * 24
    assert server["proc"].wait(180) == 130, _read(server["log"])
    assert "stopped by SIGINT" in _read(server["log"])


def test_a_public_bind_without_a_token_or_a_taken_port_fails_before_ray_starts(checkpoint):
    env = {k: v for k, v in os.environ.items() if k != "RAYDIST_TOKEN"}
    run = subprocess.run(
        [sys.executable, "-m", "raydist.cli", "serve", "--model", checkpoint, "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 2 and "--token" in run.stderr + run.stdout
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        run = subprocess.run(
            [sys.executable, "-m", "raydist.cli", "serve", "--model", checkpoint, "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    assert run.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in run.stderr + run.stdout


def test_replicas_are_fixed_or_autoscaled_and_sized_as_asked(checkpoint):
    from raydist.serve.api import ServeConfig
    from raydist.serve.app import encoder_options

    fixed = encoder_options(ServeConfig(model=checkpoint, replicas=2, cpus_per_replica=0.5, max_batch=8))
    assert fixed["num_replicas"] == 2 and "autoscaling_config" not in fixed
    assert fixed["ray_actor_options"] == {"num_cpus": 0.5, "num_gpus": 0.0} and fixed["max_ongoing_requests"] == 16
    scaled = encoder_options(ServeConfig(model=checkpoint, replicas=1, max_replicas=4, gpus_per_replica=1))
    assert "num_replicas" not in scaled and scaled["ray_actor_options"]["num_gpus"] == 1
    assert scaled["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 16}
    with pytest.raises(ValueError, match="--token"):
        ServeConfig(model=checkpoint, host="10.0.0.5")
    assert ServeConfig(model=checkpoint, host="10.0.0.5", token="t").host == "10.0.0.5"

"""`raydist serve` under load on localhost: latency of a warm /embed and /search, throughput at
saturation against the batch pipeline on the same clips and cores, a cold command beside a warm
request, 10,000 requests with 1% malformed bodies, and one encoder replica killed mid-load.

    python -m bench serve --clips 600 --seconds 5

The server is started with `raydist.serve.app.start` (what `raydist serve` runs) on a local Ray of
--procs CPUs; the clients (aiohttp, one process) share those cores. Every load is bounded (a
request count or a duration) and stops by itself. The batch pipeline's steady rate is measured in
the same run on the same clips (`bench embed`'s method: two corpus sizes, the slope).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from bench.corpora.tones import make_corpus, make_model
from bench.embed import ray_pipeline, split_costs
from bench.report import table


async def _load(
    url: str,
    bodies: list[bytes],
    clients: int,
    count: int | None = None,
    seconds: float | None = None,
    path: str = "/embed",
    on_start=None,
) -> list[tuple[float, float, int, int]]:
    """`clients` concurrent clients send bodies round-robin until `count` requests or `seconds` have
    passed. Returns (start, end, status, body index) per request; status 0 = no response."""
    import aiohttp

    out: list[tuple[float, float, int, int]] = []
    sent = 0
    t0 = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=120)

    async def client(session):
        nonlocal sent
        while True:
            if count is not None and sent >= count:
                return
            if seconds is not None and time.perf_counter() - t0 >= seconds:
                return
            i = sent
            sent += 1
            body = bodies[i % len(bodies)]
            start = time.perf_counter()
            try:
                async with session.post(url + path, data=body) as r:
                    await r.read()
                    status = r.status
            except (aiohttp.ClientError, asyncio.TimeoutError):
                status = 0
            out.append((start - t0, time.perf_counter() - t0, status, i % len(bodies)))

    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=clients)) as session:
        tasks = [asyncio.create_task(client(session)) for _ in range(clients)]
        if on_start:
            tasks.append(asyncio.create_task(on_start()))
        await asyncio.gather(*tasks)
    return out


def _ms(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000, q))


def _latency(rows) -> dict:
    ok = [e - s for s, e, st, _ in rows if st == 200]
    return {"n": len(rows), "ok": len(ok), "p50_ms": _ms(ok, 50), "p99_ms": _ms(ok, 99)}


def _replicas(name: str = "Encoder") -> list[str]:
    """Names of the app's live encoder replica actors (Serve names them SERVE_REPLICA::APP#NAME#ID)."""
    import ray

    prefix = f"SERVE_REPLICA::raydist#{name}#"
    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix))


def _running() -> int:
    """Encoder replicas Serve reports RUNNING."""
    from ray import serve

    states = serve.status().applications["raydist"].deployments["Encoder"].replica_states
    return int(states.get("RUNNING", 0))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench serve", description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=600)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--port", type=int, default=28123)
    ap.add_argument("--load", type=int, default=10_000, help="requests in the malformed-body load")
    args = ap.parse_args(argv)
    import ray

    from raydist.search.index import build_index
    from raydist.serve import app
    from raydist.serve.api import ServeConfig

    result: dict = {"clips": args.clips, "seconds_per_clip": args.seconds, "procs": args.procs}
    with tempfile.TemporaryDirectory() as tmp:
        model = make_model(os.path.join(tmp, "model"))
        quarter = args.clips // 4
        part, rest = os.path.join(tmp, "c", "a"), os.path.join(tmp, "c", "b")
        paths = make_corpus(part, quarter, args.seconds, 16000)
        paths += make_corpus(rest, args.clips - quarter, args.seconds, 16000, first=quarter)
        bodies = [open(p, "rb").read() for p in paths[:64]]

        # the batch pipeline on the same clips and cores: its steady rate, as `bench embed` splits it
        ray_pipeline([os.path.join(part, "c000*.wav")], model, args.procs, 32, os.path.join(tmp, "warm"))
        small = ray_pipeline([part], model, args.procs, 32, os.path.join(tmp, "small"))
        full = ray_pipeline([part, rest], model, args.procs, 32, os.path.join(tmp, "full"))
        _, steady, _ = split_costs(small, full)
        result["pipeline_steady"] = steady
        print(f"batch pipeline: {steady:.0f} audio-s/s steady")
        idx = os.path.join(tmp, "idx")
        build_index(os.path.join(tmp, "full"), idx)

        # a cold command on one file, before the server holds the cores
        t = time.perf_counter()
        cold = subprocess.run(
            [
                sys.executable,
                "-m",
                "raydist.cli",
                "embed",
                paths[0],
                "--model",
                model,
                "--out",
                os.path.join(tmp, "one"),
            ],
            capture_output=True,
            text=True,
        )
        assert cold.returncode == 0, cold.stdout + cold.stderr
        result["cold_embed_s"] = time.perf_counter() - t

        configs = {}
        runs = {}
        for replicas in (1, 2):
            cfg = ServeConfig(
                model=model,
                index=idx,
                port=args.port,
                replicas=replicas,
                cpus_per_replica=min(1.0, (args.procs - 0.2) / replicas),
                max_batch=16,
            )
            t = time.perf_counter()
            url = app.start(cfg, configs).rstrip("/")
            startup = time.perf_counter() - t
            asyncio.run(_load(url, bodies, 4, count=40))  # warm-up
            warm = asyncio.run(_load(url, bodies[:1], 1, count=20))
            at8 = asyncio.run(_load(url, bodies, 8, count=400))
            sat = asyncio.run(_load(url, bodies, 32, seconds=20))
            done = sum(1 for r in sat if r[2] == 200)
            span = max(r[1] for r in sat) - min(r[0] for r in sat)
            search1 = asyncio.run(_load(url, bodies, 1, count=100, path="/search?k=10"))
            search8 = asyncio.run(_load(url, bodies, 8, count=200, path="/search?k=10"))
            runs[replicas] = {
                "startup_s": startup,
                "one_warm_ms": _ms([e - s for s, e, st, _ in warm if st == 200], 50),
                "embed_8_clients": _latency(at8),
                "saturation_audio_s_per_s": done * args.seconds / span,
                "saturation_requests_per_s": done / span,
                "saturation_errors": sum(1 for r in sat if r[2] != 200),
                "search_1_client": _latency(search1),
                "search_8_clients": _latency(search8),
            }
            print(replicas, "replicas:", runs[replicas])
            if replicas == 2:
                result["malformed"] = malformed_load(url, bodies, args.load)
                print("malformed:", result["malformed"])
                result["kill"] = kill_one(url, bodies)
                print("kill:", result["kill"])
            app.stop()
        result["runs"] = {str(k): v for k, v in runs.items()}
    ray.shutdown()
    print(render(result))
    return result


def malformed_load(url: str, bodies: list[bytes], n: int) -> dict:
    """n requests from 16 clients, every 100th body junk: every request must get an answer, no
    5xx, and each junk body exactly a 400."""
    junk = [b"junk" * 100, b"RIFF\x00\x00\x00\x00WAVEfmt "]
    mixed = [junk[(i // 100) % 2] if i % 100 == 99 else bodies[i % len(bodies)] for i in range(n)]
    rows = asyncio.run(_load(url, mixed, 16, count=n))
    bad = {i for i in range(n) if i % 100 == 99}
    statuses = [st for _, _, st, _ in rows]
    return {
        "requests": n,
        "answered": sum(1 for s in statuses if s),
        "lost": n - sum(1 for s in statuses if s),
        "5xx": sum(1 for s in statuses if s >= 500),
        "malformed": len(bad),
        "malformed_400": sum(1 for _, _, st, i in rows if i in bad and st == 400),
        "good_200": sum(1 for _, _, st, i in rows if i not in bad and st == 200),
        "seconds": max(r[1] for r in rows),
    }


def kill_one(url: str, bodies: list[bytes], seconds: float = 40.0, at: float = 10.0) -> dict:
    """8 clients for `seconds`; one of the two encoder replicas is killed `at` seconds in."""
    import ray
    from ray import serve  # noqa: F401  (the replicas live in Serve's namespace)

    marks: dict = {}

    async def killer():
        await asyncio.sleep(at)
        victim = _replicas()[0]
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        marks["kill"] = time.perf_counter()
        while _running() == 2:  # until Serve's controller notices
            await asyncio.sleep(0.1)
        marks["noticed"] = time.perf_counter()
        while _running() < 2:  # until its replacement passed its health check
            await asyncio.sleep(0.1)
        marks["back"] = time.perf_counter()

    t0 = time.perf_counter()
    rows = asyncio.run(_load(url, bodies, 8, seconds=seconds, on_start=killer))
    kill = marks["kill"] - t0
    after = [r for r in rows if r[0] >= kill - 1]
    errors = [r for r in after if r[2] != 200]
    last_error = max((r[1] for r in errors), default=kill)
    return {
        "requests": len(rows),
        "errors": len(errors),
        "error_rate_after_kill": len(errors) / max(1, len(after)),
        "statuses": sorted({r[2] for r in rows}),
        "noticed_s": marks["noticed"] - marks["kill"],
        "replica_back_s": marks["back"] - marks["kill"],
        "last_error_after_s": last_error - kill,
        "p50_before_ms": _ms([e - s for s, e, st, _ in rows if e < kill and st == 200], 50),
        "p50_after_ms": _ms([e - s for s, e, st, _ in rows if s > kill and st == 200], 50),
    }


def render(result: dict) -> str:
    runs = result["runs"]
    head = [
        "encoder replicas",
        "one warm /embed",
        "/embed p50 / p99, 8 clients",
        "saturation audio-s/s",
        "× pipeline",
        "/search p50, 1 / 8 clients",
    ]
    rows = []
    for k, r in runs.items():
        e, s1, s8 = r["embed_8_clients"], r["search_1_client"], r["search_8_clients"]
        rows.append(
            [
                k,
                f"{r['one_warm_ms']:.0f} ms",
                f"{e['p50_ms']:.0f} / {e['p99_ms']:.0f} ms",
                f"{r['saturation_audio_s_per_s']:.0f} ({r['saturation_requests_per_s']:.0f} req/s)",
                f"{r['saturation_audio_s_per_s'] / result['pipeline_steady']:.2f}×",
                f"{s1['p50_ms']:.0f} / {s8['p50_ms']:.0f} ms",
            ]
        )
    m, k = result["malformed"], result["kill"]
    lines = [
        f"{result['clips']} clips of {result['seconds_per_clip']:.0f} s (16 kHz WAV); {result['procs']} cores shared "
        f"by the server and its clients. Batch pipeline on the same clips: {result['pipeline_steady']:.0f} "
        "audio-s/s steady.",
        "",
        table(head, rows),
        "",
        f"A cold `raydist embed` of one file: {result['cold_embed_s']:.1f} s; one warm request: "
        f"{runs['1']['one_warm_ms']:.0f} ms.",
        "",
        f"Malformed load (2 replicas, 16 clients): {m['requests']} requests, {m['malformed']} malformed; "
        f"answered {m['answered']}, lost {m['lost']}, 5xx {m['5xx']}, malformed answered 400: "
        f"{m['malformed_400']}/{m['malformed']}, good answered 200: {m['good_200']} ({m['seconds']:.0f} s).",
        "",
        f"One of 2 encoder replicas killed {10:.0f} s into a 40 s load of 8 clients: {k['errors']} of "
        f"{k['requests']} requests failed (error rate {100 * k['error_rate_after_kill']:.2f}% after the kill; "
        f"statuses {k['statuses']}: a request whose replica died is sent again to another); Serve noticed "
        f"after {k['noticed_s']:.1f} s and had a replacement running after {k['replica_back_s']:.1f} s; "
        f"p50 {k['p50_before_ms']:.0f} ms before, {k['p50_after_ms']:.0f} ms after.",
    ]
    return "\n".join(lines)


def headline(result: dict) -> list[tuple[str, str]]:
    r = result["runs"]["2"]
    e = r["embed_8_clients"]
    return [
        ("warm /embed of a 5 s clip, 8 clients", f"p50 {e['p50_ms']:.0f} ms, p99 {e['p99_ms']:.0f} ms"),
        (
            "served throughput against the batch pipeline",
            f"{r['saturation_audio_s_per_s'] / result['pipeline_steady']:.2f}×",
        ),
        (
            "warm /search by audio, p50 with 1 / 8 clients",
            f"{r['search_1_client']['p50_ms']:.0f} / {r['search_8_clients']['p50_ms']:.0f} ms",
        ),
        (
            "one warm /embed against a cold `raydist embed` of one file",
            f"{result['runs']['1']['one_warm_ms']:.0f} ms against {result['cold_embed_s']:.1f} s",
        ),
    ]

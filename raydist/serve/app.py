"""The Ray Serve application of `raydist serve`: an `Encoder` deployment (the model in each
replica, requests gathered into batches by `@serve.batch`, replicas on CPU or GPU actors,
autoscaled between --replicas and --max-replicas) behind an `Api` deployment, the FastAPI
ingress of `raydist.serve.api` (one replica: it parses, searches the index and answers; the
encoders do the work).

    url = start(ServeConfig(model="runs/a/model.pt", index="idx/"))   # Ray initialised
    ...
    stop()   # in-flight requests finish first
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from raydist.serve.api import HTTPError, ServeConfig, build_api
from raydist.serve.work import Upload, Worker

APP = "raydist"
DRAIN_S = 30.0  # a stopping replica waits this long at most for its in-flight requests


def _sized(results: list[dict]) -> list[dict]:
    """Each result carries the size of the batch it was computed in (for /metrics)."""
    return [{**r, "batch_size": len(results)} for r in results]


@serve.deployment(graceful_shutdown_timeout_s=DRAIN_S, health_check_period_s=5)
class Encoder:
    """One model per replica. Embed and compress requests are batched; the batch runs in a thread
    so that the replica keeps taking requests into the next one."""

    def __init__(self, cfg: dict, configs: dict):
        self.worker = Worker(
            cfg["model"], configs, cfg["storage_options"], "cuda" if cfg["gpus_per_replica"] else "cpu"
        )
        for batched in (self._embed, self._compress):
            batched.set_max_batch_size(cfg["max_batch"])
            batched.set_batch_wait_timeout_s(cfg["batch_wait_ms"] / 1000)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def _embed(self, uploads: list[Upload]) -> list[dict]:
        return _sized(await asyncio.to_thread(self.worker.embed, uploads))

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def _compress(self, uploads: list[Upload]) -> list[dict]:
        return _sized(await asyncio.to_thread(self.worker.compress, uploads))

    async def embed(self, upload: Upload) -> dict:
        return await self._embed(upload)

    async def compress(self, upload: Upload) -> dict:
        return await self._compress(upload)

    async def decompress(self, row: dict) -> dict:
        return (await asyncio.to_thread(self.worker.decompress, [row]))[0]

    async def view(self, upload: Upload) -> dict:
        return await asyncio.to_thread(self.worker.view, upload)

    def info(self) -> dict:
        return self.worker.info()


class HandleBackend:
    """`raydist.serve.api.Backend` through a handle to the Encoder deployment. A request whose
    replica died under it (a crash, a node lost) is sent again, to another replica, up to
    RETRIES times (every call is idempotent); then it is a 503."""

    RETRIES = 2

    def __init__(self, handle: Any):
        self.h = handle

    async def _call(self, method: str, *args: Any) -> dict:
        from ray.exceptions import ActorUnavailableError, RayActorError

        for attempt in range(self.RETRIES + 1):
            try:
                return await getattr(self.h, method).remote(*args)
            except (RayActorError, ActorUnavailableError) as e:
                if attempt == self.RETRIES:
                    raise HTTPError(503, f"no encoder replica could answer ({type(e).__name__}); try again") from None
        raise AssertionError("unreachable")

    async def embed(self, upload: Upload) -> dict:
        return await self._call("embed", upload)

    async def compress(self, upload: Upload) -> dict:
        return await self._call("compress", upload)

    async def decompress(self, row: dict) -> dict:
        return await self._call("decompress", row)

    async def view(self, upload: Upload) -> dict:
        return await self._call("view", upload)

    async def info(self) -> dict:
        return await self._call("info")


# the ingress only parses and waits: it takes every request at once (Serve's default of 5 would
# queue the rest in the proxy, and keep the encoder's batches small)
@serve.deployment(
    num_replicas=1,
    ray_actor_options={"num_cpus": 0.1},
    max_ongoing_requests=10_000,
    graceful_shutdown_timeout_s=DRAIN_S,
)
@serve.ingress()
class Api:
    def __init__(self, encoder: Any, cfg: dict):
        from raydist.search.query import Index

        self.cfg = ServeConfig(**cfg)
        self.backend = HandleBackend(encoder)
        self.index = Index(self.cfg.index, self.cfg.storage_options) if self.cfg.index else None

    def __serve_build_asgi_app__(self):
        self.api = build_api(self.backend, self.cfg, self.index)  # (`app` is Serve's)
        return self.api

    async def drain(self) -> int:
        """Refuse new requests and wait for those in flight (see `build_api`)."""
        return await self.api.state.drain(DRAIN_S)


def encoder_options(cfg: ServeConfig) -> dict:
    actor = {"num_cpus": cfg.cpus_per_replica, "num_gpus": cfg.gpus_per_replica}
    # a replica holds up to two batches: one running, one filling
    opts: dict[str, Any] = {"ray_actor_options": actor, "max_ongoing_requests": 2 * cfg.max_batch}
    if cfg.max_replicas > cfg.replicas:
        opts["autoscaling_config"] = {
            "min_replicas": cfg.replicas,
            "max_replicas": cfg.max_replicas,
            "target_ongoing_requests": cfg.max_batch,
        }
    else:
        opts["num_replicas"] = cfg.replicas
    return opts


def start(cfg: ServeConfig, configs: dict | None = None) -> str:
    """Deploy the app on the connected Ray and return its URL once every replica is up.
    `configs`: the output and segment settings the index's embeddings were made with."""
    serve.start(http_options={"host": cfg.host, "port": cfg.port})
    encoder = Encoder.options(**encoder_options(cfg)).bind(cfg.to_dict(), configs or {})
    # no access log: a line per request, each shipped to the driver, cost CPU the requests need
    # (/metrics counts them); warnings and errors still go to the logs
    logging = {"enable_access_log": False}
    serve.run(Api.bind(encoder, cfg.to_dict()), name=APP, route_prefix="/", blocking=False, logging_config=logging)
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    return f"http://{host}:{cfg.port}/"


def stop() -> int:
    """Stop taking requests (503), let the ones in flight finish (up to DRAIN_S), then delete the
    app. Returns how many requests were in flight."""
    try:
        n = serve.get_app_handle(APP).drain.remote().result(timeout_s=DRAIN_S + 10)
    finally:
        serve.delete(APP)
        serve.shutdown()
    return n


__all__ = ["APP", "Api", "Encoder", "start", "stop"]

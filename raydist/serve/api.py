"""The HTTP API and web page of `raydist serve`, as a FastAPI app, no Ray: `build_api` takes a
`Backend` (the model, reached through Ray Serve in `raydist.serve.app`) and an optional index.

Every request passes one guard: the token (when set), the body size limit (413), the deadline
(504: the server's, or a shorter `?timeout_s=`), and the metrics. Errors are JSON
`{"error": message}` with a 4xx for the client's mistakes; bad audio is a 400 with the decoder's
message. No request parameter reaches a filesystem path: `/clips/{id}/audio` looks the id up in
the index and serves the uri the index holds for it.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import json
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Awaitable, Optional, Protocol

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from raydist.serve.metrics import Metrics
from raydist.serve.work import Upload

STATIC = os.path.join(os.path.dirname(__file__), "static")
COOKIE = "raydist_token"
MAP_POINTS = 5000  # clips drawn on the page's map (a seeded sample of larger indexes)
AUDIO_TYPES = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".mp3": "audio/mpeg",
}


@dataclass
class ServeConfig:
    """What `raydist serve` was started with (JSON-able: it travels to the replicas)."""

    model: str
    index: Optional[str] = None
    host: str = "127.0.0.1"
    port: int = 8000
    token: Optional[str] = None
    max_mb: float = 50.0  # request bodies above this get 413
    timeout_s: float = 60.0  # per request (a client may ask for less with ?timeout_s=)
    replicas: int = 1  # encoder replicas (the least, with autoscaling)
    max_replicas: int = 0  # > replicas: autoscale between the two on load
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    max_batch: int = 16  # requests an encoder call takes at most (@serve.batch)
    batch_wait_ms: float = 5.0  # how long a batch waits to fill
    storage_options: Optional[dict] = None

    def __post_init__(self) -> None:
        local = self.host in ("127.0.0.1", "localhost", "::1")
        if not local and not self.token:
            raise ValueError(
                f"--host {self.host} exposes the server beyond this machine: give --token (or RAYDIST_TOKEN), "
                "which every request must then carry"
            )
        for name in ("max_mb", "timeout_s", "cpus_per_replica"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be > 0")
        if self.replicas < 1 or self.max_batch < 1:
            raise ValueError("--replicas and --max-batch must be at least 1")

    def to_dict(self) -> dict:
        return asdict(self)


class Backend(Protocol):
    """The model side: one result dict per call, `{"error": {...}}` when the input was bad."""

    def embed(self, upload: Upload) -> Awaitable[dict]: ...
    def compress(self, upload: Upload) -> Awaitable[dict]: ...
    def decompress(self, row: dict) -> Awaitable[dict]: ...
    def view(self, upload: Upload) -> Awaitable[dict]: ...
    def info(self) -> Awaitable[dict]: ...


class HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _bad_input(res: dict) -> dict:
    """A backend result -> itself, or a 400 carrying the decoder's (or codec's) message."""
    if "error" in res:
        e = res["error"]
        raise HTTPError(400, f"{e['message']} ({e['stage']}: {e['type']})")
    return res


def _authorised(request: Request, token: str) -> bool:
    given = request.headers.get("authorization", "")
    given = given[7:] if given.lower().startswith("bearer ") else request.cookies.get(COOKIE, "")
    return hmac.compare_digest(given.encode(), token.encode())


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) more than `limit` bytes, declared or streamed."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"request body of {int(declared)} bytes is over this server's limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"request body is over this server's limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise HTTPError(400, "the request has no body: send the audio file's bytes")
    return body


def build_api(backend: Backend, cfg: ServeConfig, index: Any = None) -> FastAPI:
    """The app. `index`: a `raydist.search.query.Index`, or None (then /search, /map and /clips
    answer 404 saying the server has no index)."""
    app = FastAPI(
        title="raydist",
        description="Embed, search, compress and decompress audio with a warm raydist model.",
        version="1",
    )
    metrics = Metrics()
    limit = int(cfg.max_mb * 1e6)
    cache: dict[str, Any] = {}

    flight = {"now": 0, "most_at_drain": 0, "draining": False}

    async def drain(wait_s: float) -> int:
        """Refuse new requests (503) and wait up to `wait_s` for those in flight; returns how many
        were in flight when the drain began."""
        flight["draining"], flight["most_at_drain"] = True, flight["now"]
        end = time.monotonic() + wait_s
        while flight["now"] and time.monotonic() < end:
            await asyncio.sleep(0.05)
        return flight["most_at_drain"]

    app.state.drain = drain

    @app.middleware("http")
    async def guard(request: Request, call_next):
        start = time.perf_counter()
        if flight["draining"]:
            response: Response = _json(503, "the server is stopping")
            response.headers["connection"] = "close"
        elif cfg.token and not _authorised(request, cfg.token) and not _token_login(request, cfg.token):
            response = _json(401, "missing or wrong token: send 'Authorization: Bearer TOKEN'")
        else:
            flight["now"] += 1
            try:
                response = await asyncio.wait_for(call_next(request), _deadline(request, cfg.timeout_s))
            except asyncio.TimeoutError:
                response = _json(504, f"the request took longer than {_deadline(request, cfg.timeout_s):g} s")
            except HTTPError as e:
                response = _json(e.status, str(e))
            finally:
                flight["now"] -= 1
        route = request.scope.get("route")
        metrics.request(getattr(route, "path", "other"), response.status_code, time.perf_counter() - start)
        return response

    @app.exception_handler(HTTPError)
    async def _http_error(request: Request, e: HTTPError):
        return _json(e.status, str(e))

    @app.exception_handler(Exception)
    async def _bug(request: Request, e: Exception):  # a bug, not the client's fault: still JSON
        return _json(500, f"internal error: {type(e).__name__}: {e}"[:500])

    async def run(call: Awaitable[dict], what: str) -> dict:
        res = await call
        if "batch_size" in res:
            metrics.batch(what, res.pop("batch_size"))
        if "error" in res:
            metrics.bad_input(what)
        return _bad_input(res)

    def need_index():
        if index is None:
            raise HTTPError(404, "this server has no index: start it with --index IDX")
        return index

    @app.get("/", include_in_schema=False)
    async def page(request: Request):
        if cfg.token and request.query_params.get("token"):
            response = RedirectResponse("/", status_code=303)  # the token moves to a cookie, off the URL
            response.set_cookie(COOKIE, cfg.token, httponly=True, samesite="strict")
            return response
        return FileResponse(os.path.join(STATIC, "index.html"))

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health")
    async def health() -> dict:
        """200 when the model answers; what it is and what index it serves."""
        info = await backend.info()
        rows = await asyncio.to_thread(lambda: index.table.count_rows()) if index is not None else 0
        return {"status": "ok", "model": info, "index": _index_info(index, rows)}

    @app.get("/metrics", include_in_schema=False)
    async def prometheus():
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.post("/embed")
    async def embed(request: Request, frames: bool = False) -> dict:
        """The body is an audio file (WAV, FLAC, OGG, MP3...). Returns its clips row as `raydist
        embed` writes it; with `frames=1` also its frames row, segments and events."""
        body = await read_body(request, limit)
        return await run(backend.embed(Upload(body, frames=frames)), "embed")

    @app.post("/search")
    async def search(request: Request, id: Optional[str] = None, k: int = 10, where: Optional[str] = None) -> dict:
        """Neighbours of an indexed id (`?id=`), or of the audio file in the body, by cosine
        distance; `where` filters (SQL over the index's columns, e.g. `label = 'dog'`)."""
        idx = need_index()
        if not 1 <= k <= 1000:
            raise HTTPError(400, f"k must be within 1..1000, got {k}")
        await _check_where(idx, where)
        if id is not None:
            vector = await _indexed_vector(idx, id)
        else:
            regions = idx.meta.level != "clips"
            res = await run(backend.embed(Upload(await read_body(request, limit), frames=regions)), "search")
            vector = idx.meta.standardise(_query_vector(res, idx.meta.level)[None])[0]
        hits = await asyncio.to_thread(idx.nearest, vector[None], k, where)
        return {"query": id, "level": idx.meta.level, "hits": hits[0].to_pylist()}

    @app.post("/compress")
    async def compress(request: Request) -> dict:
        """The body is an audio file; returns its codec row as `raydist compress` writes it
        (`codes` in base64): POST it to /decompress to hear it back."""
        return await run(backend.compress(Upload(await read_body(request, limit))), "compress")

    @app.post("/decompress")
    async def decompress(request: Request):
        """The body is a codec row as /compress returns it (JSON); returns WAV audio."""
        try:
            row = json.loads(await read_body(request, limit))
        except ValueError as e:
            raise HTTPError(400, f"the body is not JSON: {e}") from None
        if not isinstance(row, dict):
            raise HTTPError(400, "the body must be one codec row (a JSON object), as /compress returns it")
        res = await run(backend.decompress(row), "decompress")
        return Response(res["wav"], media_type="audio/wav")

    @app.get("/clips/{clip_id}/audio")
    async def clip_audio(clip_id: str):
        """The indexed clip's original file, read from where the index says it is."""
        uri = await _uri_of(need_index(), clip_id)
        f = await asyncio.to_thread(_open, uri, cfg.storage_options)
        return StreamingResponse(_chunks(f), media_type=AUDIO_TYPES.get(_ext(uri), "application/octet-stream"))

    @app.get("/clips/{clip_id}/view")
    async def clip_view(clip_id: str) -> dict:
        """An indexed clip's log-mel with the events and segments `embed` finds in it."""
        idx = need_index()
        uri = await _uri_of(idx, clip_id)
        data = await asyncio.to_thread(_read_all, uri, cfg.storage_options, limit)
        return {"id": clip_id, **await run(backend.view(Upload(data, name=clip_id)), "view")}

    @app.get("/map")
    async def corpus_map() -> dict:
        """The index's clips in 2-D (PCA of their standardised embeddings), for the page's map."""
        idx = need_index()
        if "map" not in cache:
            cache["map"] = await asyncio.to_thread(_pca_map, idx)
        return cache["map"]

    return app


def _json(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _token_login(request: Request, token: str) -> bool:
    """`GET /?token=TOKEN` (the link `raydist serve` prints) may open the page once."""
    given = request.query_params.get("token", "")
    return request.url.path == "/" and request.method == "GET" and hmac.compare_digest(given.encode(), token.encode())


def _deadline(request: Request, server_s: float) -> float:
    try:
        asked = float(request.query_params.get("timeout_s", server_s))
    except ValueError:
        asked = server_s
    return min(server_s, asked) if asked > 0 else server_s


def _index_info(index: Any, rows: int) -> dict | None:
    if index is None:
        return None
    return {"uri": index.uri, "level": index.meta.level, "rows": rows}


async def _check_where(index: Any, where: Optional[str]) -> None:
    from raydist.errors import UsageError

    try:
        await asyncio.to_thread(index.check_where, where)
    except UsageError as e:
        raise HTTPError(400, str(e).replace("--where", "where")) from None


async def _indexed_vector(index: Any, clip_id: str) -> np.ndarray:
    from raydist.search.index import SearchError

    try:
        return (await asyncio.to_thread(index.vectors_of, [clip_id]))[0]
    except SearchError:
        raise HTTPError(404, f"id {clip_id!r} is not in the index") from None


def _query_vector(res: dict, level: str) -> np.ndarray:
    from raydist.search.query import level_vector

    rows = [res["clip"]] if level == "clips" else res[level]
    raw = level_vector(rows)
    if raw is None:
        raise HTTPError(400, f"the audio has no {level[:-1]} (is it silent?)")
    return raw


async def _uri_of(index: Any, clip_id: str) -> str:
    from raydist.search.query import _sql_string

    def look() -> list:
        rows = index.table.search().where(f"id = {_sql_string(clip_id)}").select(["uri"]).limit(1).to_arrow()
        return rows.column("uri").to_pylist()

    found = await asyncio.to_thread(look)
    if not found:
        raise HTTPError(404, f"id {clip_id!r} is not in the index")
    return found[0]


def _ext(uri: str) -> str:
    return os.path.splitext(uri)[1].lower()


def _open(uri: str, storage_options: dict | None):
    """The indexed file (a uri from the index, never from the request); 404 if it is gone."""
    import fsspec

    try:
        return fsspec.open(uri, "rb", **(storage_options or {})).open()
    except (OSError, ValueError) as e:
        raise HTTPError(404, f"the clip's file cannot be read any more ({type(e).__name__})") from None


def _chunks(f, chunk: int = 1 << 20):
    with f:
        while block := f.read(chunk):
            yield block


def _read_all(uri: str, storage_options: dict | None, limit: int) -> bytes:
    buf = io.BytesIO()
    for block in _chunks(_open(uri, storage_options)):
        buf.write(block)
        if buf.tell() > limit:
            raise HTTPError(413, f"the clip's file is over this server's limit of {limit} bytes for a view")
    return buf.getvalue()


def _pca_map(index: Any) -> dict:
    table = index.table.to_arrow()
    if table.num_rows > MAP_POINTS:
        keep = np.sort(np.random.default_rng(0).choice(table.num_rows, MAP_POINTS, replace=False))
        table = table.take(keep)
    x = np.asarray(table.column("vector").to_pylist(), np.float32)
    if len(x) == 0:
        return {"points": [], "explained": []}
    x = x - x.mean(0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T if len(vt) >= 2 else np.pad(x @ vt[:1].T, ((0, 0), (0, 1)))
    var = (s**2) / max(float((s**2).sum()), 1e-12)
    cols = table.column_names
    labels = table.column("label").to_pylist() if "label" in cols else [None] * len(x)
    return {
        "points": [
            {"id": i, "x": float(a), "y": float(b), "label": lab}
            for i, (a, b), lab in zip(table.column("id").to_pylist(), xy, labels)
        ],
        "explained": [float(v) for v in var[:2]],
    }


__all__ = ["Backend", "HTTPError", "ServeConfig", "build_api", "read_body"]

"""`raydist serve`: the model kept warm behind an HTTP API and a web page (Ray Serve)."""

from __future__ import annotations

import socket
import time
from typing import Optional

import typer

from raydist.cli.options import Address, EndpointUrl, Model, check_local_inputs, fail, user_errors


def serve(
    model: Model,
    index: Optional[str] = typer.Option(
        None, "--index", help="Index made by `raydist index` (enables /search, /map, /clips and the page's corpus)."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to bind. Anything but this machine's loopback needs --token."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to bind."),
    token: Optional[str] = typer.Option(
        None,
        envvar="RAYDIST_TOKEN",
        help="Every request must carry it ('Authorization: Bearer TOKEN'; the page: open the printed link). "
        "Default: $RAYDIST_TOKEN.",
        show_default=False,
    ),
    replicas: int = typer.Option(1, min=1, help="Encoder replicas (the least, with --max-replicas)."),
    max_replicas: int = typer.Option(0, min=0, help="Autoscale encoder replicas up to this many on load (0: fixed)."),
    cpus_per_replica: float = typer.Option(1.0, help="CPUs each encoder replica reserves (its torch threads)."),
    gpus_per_replica: float = typer.Option(0.0, help="GPUs each encoder replica reserves (0: runs on CPU)."),
    max_batch: int = typer.Option(16, min=1, help="Requests one encoder call takes at most (dynamic batching)."),
    batch_wait_ms: float = typer.Option(5.0, min=0, help="How long a batch waits for more requests."),
    max_mb: float = typer.Option(50.0, help="Largest request body in MB (larger: 413)."),
    timeout_s: float = typer.Option(60.0, help="Longest a request may take (longer: 504)."),
    address: Address = None,
    endpoint_url: EndpointUrl = None,
) -> None:
    """Serve the model warm over HTTP: POST /embed, /search, /compress, /decompress; GET /clips/ID/audio,
    /health, /metrics; OpenAPI at /docs; a web page at /. Runs until Ctrl-C or SIGTERM, which let
    requests in flight finish (exit 130 / 143)."""
    from raydist.io.inputs import storage_options_for
    from raydist.serve.api import ServeConfig

    check_local_inputs([], model=model, **({"index": index} if index else {}))
    so = storage_options_for(endpoint_url)
    with user_errors():
        cfg = ServeConfig(
            model=model,
            index=index,
            host=host,
            port=port,
            token=token,
            max_mb=max_mb,
            timeout_s=timeout_s,
            replicas=replicas,
            max_replicas=max_replicas,
            cpus_per_replica=cpus_per_replica,
            gpus_per_replica=gpus_per_replica,
            max_batch=max_batch,
            batch_wait_ms=batch_wait_ms,
            storage_options=so,
        )
    _check_port(host, port)
    with user_errors():
        configs = _matching_configs(model, index, so)
    from raydist.cluster import session
    from raydist.console import say
    from raydist.serve import app
    from raydist.signals import Interrupted, name, on_signals

    with user_errors():
        with on_signals(raise_first=True):
            session.init_ray(address)
            try:
                url = app.start(cfg, configs)
            except RuntimeError as e:  # Serve's proxy could not bind: the port was taken since the check
                if "Failed to bind" not in str(e):
                    raise
                fail(f"cannot listen on {host}:{port}: another process took it while Ray started", 1)
            link = f"{url}?token=..." if token else url  # the token is not printed: the user has it
            say(f"raydist: serving {model} at {link} (API docs at {url}docs); Ctrl-C stops")
            received: list[int] = []
            try:
                while True:
                    time.sleep(0.5)
            except Interrupted as e:
                received.append(e.signum)
        with on_signals():  # a second signal during the drain exits at once
            n = app.stop()
        raise Interrupted(
            received[0], f"serve stopped by {name(received[0])} after the {n} requests in flight finished"
        )


def _check_port(host: str, port: int) -> None:
    """Fail before Ray starts when the address cannot be bound (in use, or not this machine's)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            fail(f"cannot listen on {host}:{port}: {e.strerror or e}")


def _matching_configs(model: str, index: str | None, so: dict | None) -> dict:
    """The index's embedding settings (served vectors must be made like the indexed ones), after
    checking that the model is the one the index was built with."""
    if not index:
        return {}
    from raydist.model.checkpoint import load_model
    from raydist.search.index import SearchError, read_meta

    meta = read_meta(index, so)
    vae = load_model(model, storage_options=so).vae_id
    if vae != meta.model["vae_sha256"]:
        raise SearchError(
            f"{model} is another model than the one {index} was built from "
            f"(VAE {vae[:12]} against {meta.model['vae_sha256'][:12]}): its vectors are not comparable"
        )
    return meta.configs or {}


__all__ = ["serve"]

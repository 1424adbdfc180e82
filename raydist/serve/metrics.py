"""Prometheus metrics of the API (`GET /metrics`): requests by route and status, latency, the
encoder's batch sizes, and bad inputs. One registry per app (the ingress is one replica)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "raydist_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "raydist_request_seconds",
            "Time from request to response",
            ["route"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.batches = Histogram(
            "raydist_batch_size", "Requests per encoder call", ["call"], registry=self.registry, buckets=BATCH_BUCKETS
        )
        self.bad = Counter(
            "raydist_bad_inputs", "Requests refused for bad audio or rows", ["call"], registry=self.registry
        )

    def request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def batch(self, call: str, size: int) -> None:
        self.batches.labels(call).observe(size)

    def bad_input(self, call: str) -> None:
        self.bad.labels(call).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)

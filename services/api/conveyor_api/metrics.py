"""Prometheus metrics of the API (one registry per app, so tests can build several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "conveyor_api_requests",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "conveyor_api_request_seconds",
            "HTTP request duration",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.submitted = Counter(
            "conveyor_jobs_submitted",
            "Jobs submitted",
            ["type", "priority"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "conveyor_queue_depth",
            "Run commands not yet delivered to a worker",
            ["priority"],
            registry=self.registry,
        )
        self.projector_lag = Gauge(
            "conveyor_projector_lag_events",
            "Events in the log not yet in the read model",
            registry=self.registry,
        )

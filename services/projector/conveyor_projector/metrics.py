"""Prometheus metrics of the projector, served from a thread of their own
(``CONVEYOR_METRICS_PORT``; no endpoint when unset)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from conveyor_events.poison import POISON_KINDS


class ProjectorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.applied = Counter(
            "conveyor_projector_events_applied",
            "Events applied to the read model",
            registry=r,
        )
        self.dead_letters = Counter(
            "conveyor_projector_dead_letters",
            "Events parked in the dead_letters table instead of being applied (kind)",
            ["kind"],
            registry=r,
        )
        for kind in POISON_KINDS:
            self.dead_letters.labels(kind=kind)
        self.checkpoint = Gauge(
            "conveyor_projector_checkpoint",
            "Stream sequence of the last event applied or parked (the checkpoint)",
            registry=r,
        )
        self.lag = Gauge(
            "conveyor_projector_lag_events",
            "Events in the log after the checkpoint (the projector's lag), measured each second",
            registry=r,
        )
        self.pruned = Counter(
            "conveyor_projector_jobs_pruned",
            "Terminal jobs pruned from the read model by CONVEYOR_RETENTION_TERMINAL_DAYS",
            registry=r,
        )

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)

"""Prometheus metrics of a worker, served from a thread of their own (``CONVEYOR_METRICS_PORT``)
so that a handler hogging the event loop does not blind the scraper."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_RUN_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
_WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300)


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.started = Counter(
            "conveyor_jobs_started", "Attempts started", ["type", "priority"], registry=r
        )
        self.completed = Counter(
            "conveyor_jobs_completed", "Jobs completed", ["type", "priority"], registry=r
        )
        self.failed = Counter(
            "conveyor_jobs_failed",
            "Attempts failed (retry: whether another attempt follows)",
            ["type", "priority", "error_type", "retry"],
            registry=r,
        )
        self.stopped = Counter(
            "conveyor_jobs_stopped", "Attempts cancelled by a stop", ["type"], registry=r
        )
        self.run_seconds = Histogram(
            "conveyor_job_run_seconds",
            "Handler run time of settled attempts",
            ["type"],
            buckets=_RUN_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "conveyor_job_queue_wait_seconds",
            "From a run command being queued (or its not-before time) to its attempt starting",
            ["priority"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.running = Gauge("conveyor_worker_running", "Attempts running now", registry=r)
        self.fenced = Counter(
            "conveyor_worker_fenced",
            "Attempts whose outcome the log refused: another attempt had taken the job over",
            registry=r,
        )
        self.handed_back = Counter(
            "conveyor_worker_handed_back",
            "Deliveries handed back for immediate redelivery (shutdown)",
            registry=r,
        )
        self.poison = Counter(
            "conveyor_worker_poison_commands",
            "Run commands terminated because they cannot be run (reason)",
            ["reason"],
            registry=r,
        )
        self.heartbeats = Counter(
            "conveyor_worker_heartbeats",
            "In-progress heartbeats sent for running attempts",
            registry=r,
        )

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)

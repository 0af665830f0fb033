from __future__ import annotations

import os
import re
import socket
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from conveyor_bus.settings import BusSettings
from conveyor_events import names

_NOT_IN_TOKEN = re.compile(r"[^A-Za-z0-9_:-]+")


def _default_worker_id() -> str:
    host = _NOT_IN_TOKEN.sub("-", socket.gethostname()).strip("-") or "worker"
    return f"{host}-{os.getpid()}-{os.urandom(2).hex()}"


class Settings(BusSettings):
    """The worker's settings: ``CONVEYOR_*`` environment variables, plus ``NATS_URL``."""

    worker_id: str = Field(default_factory=_default_worker_id)
    concurrency: int = Field(64, ge=1, le=10_000)
    """Attempts one worker runs at once. Handlers are coroutines on one event loop, so this
    is how many may be waiting on I/O together (like Taskiq's max_async_tasks), not a number
    of processes or threads; CPU-bound work wants fewer (see docs/reference/configuration.md)."""
    heartbeat_s: float = Field(5.0, gt=0)
    """How often the worker publishes its presence (GET /workers)."""
    shutdown_grace_s: float = Field(20.0, ge=0)
    retry_base_s: float = Field(1.0, ge=0)
    retry_cap_s: float = Field(300.0, ge=0)
    progress_interval_s: float = Field(0.25, ge=0)
    """Progress events are coalesced to at most one per interval per job."""
    stop_check_s: float = Field(1.0, gt=0)
    idle_poll_s: float = Field(0.25, gt=0)
    max_deliveries: int = Field(5, ge=1, le=1_000)
    """How many times one run of a job may be started. A delivery past it, of a job whose
    attempt is still running (its workers keep dying or freezing), fails the job with error
    type ``WorkerLost`` instead of delivering it forever."""
    metrics_port: int | None = Field(None, ge=0, le=65_535)
    """Serve Prometheus metrics on this port (unset: no metrics endpoint)."""
    metrics_host: str = "127.0.0.1"
    priority_weights: Annotated[dict[names.Priority, int] | None, NoDecode] = None
    """``high=4,regular=1``: weighted priority, each priority's share of the starts while both
    have jobs queued, so regular jobs progress under a flood of high ones. Unset: strict
    priority, a free slot always takes a high job first (the default)."""
    job_modules: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """``CONVEYOR_JOB_MODULES``: import paths of the modules whose ``@conveyor.job`` types this
    worker runs (comma list), besides the built-in types."""
    exec_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """``CONVEYOR_EXEC_ALLOW``: path globs of the programs ``exec`` jobs may run (comma list).
    Empty (the default): this worker does not serve ``exec``."""
    exec_grace_s: float = Field(5.0, ge=0, le=300)
    """How long a stopped or timed-out program's process group has between SIGTERM and
    SIGKILL."""
    allow_busy_sleep: bool = False
    """Run ``sleep`` jobs with ``busy: true``, which hold the worker's event loop for up to
    30 s (tests and demos); otherwise they fail at once, without a retry."""

    @field_validator("priority_weights", mode="before")
    @classmethod
    def _weights(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if not value.strip():
            return None
        weights: dict[str, int] = {}
        for item in value.split(","):
            name, sep, weight = item.partition("=")
            name = name.strip()
            if not sep or name not in names.PRIORITIES:
                raise ValueError(
                    f"{item.strip()!r} is not priority=weight with a priority of "
                    f"{', '.join(names.PRIORITIES)} (e.g. high=4,regular=1)"
                )
            try:
                weights[name] = int(weight)
            except ValueError:
                message = f"the weight of {name} must be a whole number, not {weight!r}"
                raise ValueError(message) from None
            if weights[name] < 1:
                raise ValueError(f"the weight of {name} must be at least 1, not {weights[name]}")
        missing = [p for p in names.PRIORITIES if p not in weights]
        if missing:
            raise ValueError(f"no weight for {', '.join(missing)} (e.g. high=4,regular=1)")
        return weights

    @field_validator("job_modules", "exec_allow", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("worker_id")
    @classmethod
    def _subject_token(cls, value: str) -> str:
        """The id is a token of the worker's heartbeat subject: a host name such as
        ``x.local`` becomes ``x-local`` (NATS subjects split on dots; ``*``, ``>`` and blanks
        are not allowed in a token)."""
        token = _NOT_IN_TOKEN.sub("-", value.strip())[:128].strip("-")
        return token or _default_worker_id()

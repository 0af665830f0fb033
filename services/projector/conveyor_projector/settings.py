from __future__ import annotations

from pydantic import Field

from conveyor_bus.settings import BusSettings
from conveyor_db.settings import DatabaseSettings


class Settings(BusSettings, DatabaseSettings):
    """The projector's settings: ``CONVEYOR_*`` variables, plus ``NATS_URL`` and
    ``DATABASE_URL``."""

    batch_size: int = Field(1000, ge=1, le=10_000)
    """Events applied per PostgreSQL transaction (at most)."""
    fetch_timeout_s: float = Field(1.0, gt=0)
    metrics_port: int | None = Field(None, ge=0, le=65_535)
    """Serve Prometheus metrics on this port (unset: no metrics endpoint)."""
    metrics_host: str = "127.0.0.1"
    retention_terminal_days: float | None = Field(None, gt=0, le=36_500)
    """Completed, failed and stopped jobs that finished longer ago leave the read model (their
    history stays in the log); unset: kept for ever."""

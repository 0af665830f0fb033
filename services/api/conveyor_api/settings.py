from __future__ import annotations

from pydantic import Field

from conveyor_bus.settings import BusSettings
from conveyor_db.settings import DatabaseSettings


class Settings(BusSettings, DatabaseSettings):
    """The API's settings: ``CONVEYOR_*`` environment variables, plus ``NATS_URL`` and
    ``DATABASE_URL``."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    read_timeout_s: float = Field(3.0, gt=0)
    """How long a read waits for PostgreSQL (connecting included) before it answers 503."""
    notifier_url: str | None = None
    """Websocket URL the dashboard connects to; default: this host, port 8001, ``/ws``."""

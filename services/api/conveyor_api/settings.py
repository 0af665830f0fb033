from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:54320/conveyor"


class Settings(BaseSettings):
    """The API's settings: ``CONVEYOR_*`` environment variables, plus ``NATS_URL`` and
    ``DATABASE_URL``."""

    model_config = SettingsConfigDict(env_prefix="CONVEYOR_", extra="ignore")

    nats_url: str = Field(DEFAULT_NATS_URL, validation_alias=AliasChoices("NATS_URL"))
    database_url: str = Field(DEFAULT_DATABASE_URL, validation_alias=AliasChoices("DATABASE_URL"))
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 1024 * 1024
    notifier_url: str | None = None
    """Websocket URL the dashboard connects to; default: this host, port 8001, ``/ws``."""
    ack_wait_s: float = 30.0
    worker_ttl_s: float = 15.0
    replicas: int = 1
    log_level: str = "info"

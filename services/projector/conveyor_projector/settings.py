from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """The projector's settings: ``CONVEYOR_*`` variables, plus ``NATS_URL`` and
    ``DATABASE_URL``."""

    model_config = SettingsConfigDict(env_prefix="CONVEYOR_", extra="ignore")

    nats_url: str = Field("nats://127.0.0.1:4222", validation_alias=AliasChoices("NATS_URL"))
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:54320/conveyor",
        validation_alias=AliasChoices("DATABASE_URL"),
    )
    batch_size: int = Field(1000, ge=1, le=10_000)
    """Events applied per PostgreSQL transaction (at most)."""
    fetch_timeout_s: float = Field(1.0, gt=0)
    ack_wait_s: float = 30.0
    worker_ttl_s: float = 15.0
    replicas: int = 1
    log_level: str = "info"

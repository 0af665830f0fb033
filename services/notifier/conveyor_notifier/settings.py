from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """The notifier's settings: ``CONVEYOR_*`` variables, plus ``NATS_URL``."""

    model_config = SettingsConfigDict(env_prefix="CONVEYOR_", extra="ignore")

    nats_url: str = Field("nats://127.0.0.1:4222", validation_alias=AliasChoices("NATS_URL"))
    host: str = "127.0.0.1"
    port: int = 8001
    client_buffer: int = Field(10_000, ge=1)
    """Frames queued for one websocket client; past this it is disconnected with 1013."""
    socket_send_buffer: int = Field(64 * 1024, ge=4096)
    """Kernel send buffer per websocket (SO_SNDBUF), so a stalled client costs bounded memory."""
    ack_wait_s: float = 30.0
    worker_ttl_s: float = 15.0
    replicas: int = 1
    log_level: str = "info"

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from conveyor_bus.settings import BusSettings
from conveyor_bus.tokens import TokenSettings
from conveyor_notifier.guards import ANY, normal_origin

DEPRECATED = {"CONVEYOR_HOST": "CONVEYOR_NOTIFIER_HOST", "CONVEYOR_PORT": "CONVEYOR_NOTIFIER_PORT"}
"""Old names still read, when the new one is unset; the api and the notifier both read them
(ADR 0015): each old name and the name that replaces it."""


class Settings(BusSettings, TokenSettings):
    """The notifier's settings: ``CONVEYOR_*`` variables, plus ``NATS_URL``; the tokens
    (``CONVEYOR_TOKENS``, ``CONVEYOR_TOKENS_FILE``) are the API's."""

    model_config = SettingsConfigDict(populate_by_name=True)

    host: str = Field(
        "127.0.0.1", validation_alias=AliasChoices("CONVEYOR_NOTIFIER_HOST", "CONVEYOR_HOST")
    )
    """``CONVEYOR_NOTIFIER_HOST``: the address to listen on (``CONVEYOR_HOST``, deprecated)."""
    port: int = Field(
        8001,
        ge=0,
        le=65_535,
        validation_alias=AliasChoices("CONVEYOR_NOTIFIER_PORT", "CONVEYOR_PORT"),
    )
    """``CONVEYOR_NOTIFIER_PORT``: the port to listen on (``CONVEYOR_PORT``, deprecated)."""
    client_buffer: int = Field(10_000, ge=1)
    """Frames queued for one websocket client; past this it is disconnected with 1013."""
    write_pause_factor: float = Field(2.0, ge=0)
    """After a round of live writes to every client that took t, wait this * t before the
    next: under load, frames gather into fewer, larger writes (0: never wait)."""
    socket_send_buffer: int = Field(64 * 1024, ge=4096)
    """Kernel send buffer per websocket (SO_SNDBUF), so a stalled client costs bounded memory."""
    api_url: str = "http://127.0.0.1:8000"
    """Where browsers open the dashboard (the API): its origin may open the feed (on a
    loopback host, under each loopback name: 127.0.0.1, localhost, [::1])."""
    allowed_origins: Annotated[list[str], NoDecode] = []
    """Further origins (``scheme://host[:port]``) whose pages may open the feed; ``*``: any.
    A handshake with another ``Origin`` is refused with 403; one without (not a browser) is
    accepted."""
    max_clients: int = Field(5_000, ge=1)
    """Open websockets at most; past it a new one is closed with 1013."""
    max_clients_per_address: int = Field(500, ge=0)
    """Open websockets from one client address at most (0: no such cap); past it 1013."""
    max_replays: int = Field(8, ge=1)
    """Replays after ``since`` that run at once; the next waits for a slot."""
    replay_wait_s: float = Field(5.0, ge=0)
    """How long a client waits for a replay slot before it is closed with 1013."""

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        return [o if o == ANY else normal_origin(o) for o in value]

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        normal_origin(value, path_allowed=True)  # raises naming the value when it is not one
        return value

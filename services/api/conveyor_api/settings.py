from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from conveyor_api.guards import normal_host, normal_origin
from conveyor_bus.settings import BusSettings
from conveyor_bus.tokens import TokenSettings
from conveyor_db.settings import DatabaseSettings


def _comma_list(value: Any) -> Any:
    """``a, b,c`` from the environment is a list; a list (from code) stays one."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


DEPRECATED = {"CONVEYOR_HOST": "CONVEYOR_API_HOST", "CONVEYOR_PORT": "CONVEYOR_API_PORT"}
"""Old names still read, when the new one is unset; the api and the notifier both read them
(ADR 0015): each old name and the name that replaces it."""


class Settings(BusSettings, DatabaseSettings, TokenSettings):
    """The API's settings: ``CONVEYOR_*`` environment variables, plus ``NATS_URL`` and
    ``DATABASE_URL``; the tokens (``CONVEYOR_TOKENS``, ``CONVEYOR_TOKENS_FILE``) are
    :class:`~conveyor_bus.tokens.TokenSettings`."""

    model_config = SettingsConfigDict(populate_by_name=True)

    host: str = Field(
        "127.0.0.1", validation_alias=AliasChoices("CONVEYOR_API_HOST", "CONVEYOR_HOST")
    )
    """``CONVEYOR_API_HOST``: the address to listen on (``CONVEYOR_HOST``, deprecated)."""
    port: int = Field(
        8000, ge=0, le=65_535, validation_alias=AliasChoices("CONVEYOR_API_PORT", "CONVEYOR_PORT")
    )
    """``CONVEYOR_API_PORT``: the port to listen on (``CONVEYOR_PORT``, deprecated)."""
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    read_timeout_s: float = Field(3.0, gt=0)
    """How long a read waits for PostgreSQL (connecting included) before it answers 503."""
    notifier_url: str | None = None
    """Websocket URL the dashboard connects to; default: this host, port 8001, ``/ws``."""
    accept_unserved_types: bool = False
    """Queue jobs of a type that no live worker runs (a type not yet deployed: its payload
    is checked only as an object, by its worker when one runs it). Off: such a job is 422."""
    submit_rate: float = Field(0.0, ge=0)
    """Jobs a second each principal (token) may submit, POST /jobs and /jobs/batch together
    (a batch counts its jobs); past it 429 with Retry-After. 0: no limit."""
    submit_burst: int = Field(1000, ge=1)
    """Jobs a principal may submit at once before ``submit_rate`` applies."""
    allowed_hosts: Annotated[list[str], NoDecode] = ["localhost"]
    """Host names the API answers to (the ``Host`` header without its port; ``*``: any). An
    IP address is always answered, and so is ``host`` when it is a name; any other name is
    refused with 400, which is what defeats DNS rebinding (see guards.py)."""
    allowed_origins: Annotated[list[str], NoDecode] = []
    """Origins (``scheme://host[:port]``) allowed to write besides the API's own (``*``:
    any): a browser write from any other ``Origin`` is refused with 403. The notifier reads
    the same variable for the pages that may open its feed."""

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: Any) -> Any:
        return [h if h == "*" else normal_host(h) for h in _comma_list(value)]

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        return [o if o == "*" else normal_origin(o) for o in _comma_list(value)]

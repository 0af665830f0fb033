"""Settings every process that talks to NATS shares (``CONVEYOR_*``, plus ``NATS_URL``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from conveyor_bus.logs import LogFormat

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
"""Where ``make up`` runs its nats-server."""


class BusSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONVEYOR_", extra="ignore")

    nats_url: str = Field(DEFAULT_NATS_URL, validation_alias=AliasChoices("NATS_URL"))
    ack_wait_s: float = Field(30.0, gt=0)
    """How long a run command may go without an ack or heartbeat before it is redelivered."""
    worker_ttl_s: float = Field(15.0, gt=0)
    """A worker that has not heartbeated for this long leaves the list of live workers."""
    replicas: int = Field(1, ge=1)
    """Replicas of the streams (3 in a NATS cluster)."""
    log_level: str = "info"
    log_format: LogFormat = "text"
    """``json``: one JSON object a line, with job id, attempt, request id and trace id."""


def warn_deprecated(renamed: Mapping[str, str], environ: Mapping[str, str] | None = None) -> None:
    """Log a warning for each deprecated variable (``renamed``: old name to new name) that is
    set while its new name is not, which is when the old one is read (names are
    case-insensitive, as the settings read them)."""
    present = {name.upper() for name in (os.environ if environ is None else environ)}
    for old, new in renamed.items():
        if old in present and new not in present:
            logging.getLogger("conveyor.settings").warning(
                "%s is deprecated and will stop being read: set %s instead", old, new
            )

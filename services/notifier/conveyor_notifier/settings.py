from __future__ import annotations

from pydantic import Field

from conveyor_bus.settings import BusSettings


class Settings(BusSettings):
    """The notifier's settings: ``CONVEYOR_*`` variables, plus ``NATS_URL``."""

    host: str = "127.0.0.1"
    port: int = 8001
    client_buffer: int = Field(10_000, ge=1)
    """Frames queued for one websocket client; past this it is disconnected with 1013."""
    write_pause_factor: float = Field(2.0, ge=0)
    """After a round of live writes to every client that took t, wait this * t before the
    next: under load, frames gather into fewer, larger writes (0: never wait)."""
    socket_send_buffer: int = Field(64 * 1024, ge=4096)
    """Kernel send buffer per websocket (SO_SNDBUF), so a stalled client costs bounded memory."""

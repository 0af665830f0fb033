"""``conveyor notifier``: the websocket feed of job events."""

from __future__ import annotations

import uvicorn

from conveyor_notifier.app import create_app
from conveyor_notifier.settings import Settings


def main() -> None:
    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()

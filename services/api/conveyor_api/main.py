"""``conveyor api``: serve the REST API and the dashboard."""

from __future__ import annotations

import uvicorn

from conveyor_api.app import create_app
from conveyor_api.settings import Settings


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
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()

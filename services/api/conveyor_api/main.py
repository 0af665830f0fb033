"""``conveyor api``: serve the REST API and the dashboard."""

from __future__ import annotations

import uvicorn

from conveyor_api.app import create_app
from conveyor_api.settings import Settings
from conveyor_bus.runtime import configure_logging


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)  # the API's own lines (uvicorn's keep their format)
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

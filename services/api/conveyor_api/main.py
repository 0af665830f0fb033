"""``conveyor api``: serve the REST API and the dashboard."""

from __future__ import annotations

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from conveyor_api.app import create_app
from conveyor_api.settings import DEPRECATED, Settings
from conveyor_bus import spans
from conveyor_bus.runtime import configure_logging
from conveyor_bus.settings import warn_deprecated


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    warn_deprecated(DEPRECATED)
    try:
        spans.configure("conveyor-api")  # off unless OTEL_* variables name an exporter
    except spans.TracingConfigError as e:
        raise SystemExit(f"conveyor api: {e}") from None
    json_lines = settings.log_format == "json"
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None if json_lines else LOGGING_CONFIG,  # None: uvicorn's lines are JSON too
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()

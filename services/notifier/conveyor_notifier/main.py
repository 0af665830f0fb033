"""``conveyor notifier``: the websocket feed of job events."""

from __future__ import annotations

from conveyor_bus.runtime import configure_logging, run
from conveyor_notifier.app import serve_forever
from conveyor_notifier.settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    run(serve_forever(settings))


if __name__ == "__main__":
    main()

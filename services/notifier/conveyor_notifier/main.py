"""``conveyor notifier``: the websocket feed of job events."""

from __future__ import annotations

import logging

from conveyor_bus.runtime import configure_logging, run
from conveyor_bus.settings import warn_deprecated
from conveyor_notifier.app import serve_forever
from conveyor_notifier.settings import DEPRECATED, Settings


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    warn_deprecated(DEPRECATED)
    # websockets' debug lines print every handshake whole, a token in its query or headers
    logging.getLogger("websockets").setLevel(max(logging.INFO, logging.getLogger().level))
    run(serve_forever(settings))


if __name__ == "__main__":
    main()

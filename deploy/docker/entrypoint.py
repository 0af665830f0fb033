"""The entry point of Conveyor's images: run the service the image was built for.

``CONVEYOR_SERVICE`` (set from the Dockerfile's ``SERVICE`` build argument) names it: ``api``,
``notifier``, ``projector`` and ``worker`` run that service's ``main()`` (what
``conveyor <service>`` runs); ``cli`` is the ``conveyor`` command itself, so
``docker run conveyor-cli migrate`` is ``conveyor migrate``.

``entrypoint.py healthcheck`` is the image's HEALTHCHECK: it exits 0 when the service answers
on its own port (``/healthz`` of the api and the notifier; the metrics endpoint that the worker
and the projector serve on ``CONVEYOR_METRICS_PORT``), 1 otherwise.
"""

from __future__ import annotations

import importlib
import os
import sys
import urllib.request

SERVICES = ("api", "notifier", "projector", "worker", "cli")

HEALTH: dict[str, tuple[tuple[str, ...], int, str]] = {
    "api": (("CONVEYOR_API_PORT", "CONVEYOR_PORT"), 8000, "/healthz"),
    "notifier": (("CONVEYOR_NOTIFIER_PORT", "CONVEYOR_PORT"), 8001, "/healthz"),
    "projector": (("CONVEYOR_METRICS_PORT",), 9100, "/metrics"),
    "worker": (("CONVEYOR_METRICS_PORT",), 9100, "/metrics"),
}
"""Per service: the variables holding its port, first found wins, as the service reads them
(``CONVEYOR_PORT`` is the deprecated name of the api's and the notifier's), that port's
default, the path to ask."""


def health_url(service: str, env: dict[str, str] | os._Environ[str]) -> str | None:
    if service not in HEALTH:
        return None
    variables, default, path = HEALTH[service]
    port = next((env[v] for v in variables if env.get(v)), default)
    return f"http://127.0.0.1:{port}{path}"


def healthcheck(service: str) -> int:
    url = health_url(service, os.environ)
    if url is None:
        return 0
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 0 if response.status == 200 else 1
    except OSError as e:
        print(f"healthcheck {url}: {e}", file=sys.stderr)
        return 1


def main(argv: list[str]) -> int:
    service = os.environ.get("CONVEYOR_SERVICE", "")
    if service not in SERVICES:
        expected = ", ".join(SERVICES)
        print(f"CONVEYOR_SERVICE={service!r}: expected one of {expected}", file=sys.stderr)
        return 2
    if argv[:1] == ["healthcheck"]:
        return healthcheck(service)
    module = importlib.import_module(f"conveyor_{service}.main")
    sys.argv = [f"conveyor {service}" if service != "cli" else "conveyor", *argv]
    module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The entry point of Conveyor's images: run the service the image was built for.

``CONVEYOR_SERVICE`` (set from the Dockerfile's ``SERVICE`` build argument) names it: ``api``,
``notifier``, ``projector`` and ``worker`` exec that service's own console script
(``conveyor-api``, ...: its ``main()``, from the service's package alone, so a service image
has no conveyor-cli); ``cli`` execs the ``conveyor`` command itself, so
``docker run conveyor-cli migrate`` is ``conveyor migrate``. The process is replaced (exec), so
the service is PID 1's program and SIGTERM reaches it directly.

``entrypoint.py healthcheck`` is the image's HEALTHCHECK: it exits 0 when the service answers
on its own port (``/healthz`` of the api and the notifier; the metrics endpoint that the worker
and the projector serve on ``CONVEYOR_METRICS_PORT``), 1 otherwise.
"""

from __future__ import annotations

import os
import sys
import urllib.request

SERVICES = ("api", "notifier", "projector", "worker", "cli")

SCRIPTS = {**{s: f"conveyor-{s}" for s in SERVICES if s != "cli"}, "cli": "conveyor"}
"""Per service: the console script that runs it (each service's pyproject.toml)."""

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
    script = SCRIPTS[service]
    try:
        os.execvp(script, [script, *argv])
    except OSError as e:  # only when the exec itself fails: a script missing from the image
        print(f"{script}: {e}", file=sys.stderr)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

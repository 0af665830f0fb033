"""Offline checks of the Dockerfile and docker-compose.yml (issue 12): hadolint passes the
Dockerfile, check-jsonschema passes the compose file against the Compose Specification, and
both agree with the code and with each other (services, healthchecks, dependencies, the
worker's shutdown grace). No Docker engine is needed; each check first shows it can fail.
"""

from __future__ import annotations

import contextlib
import http.server
import importlib
import importlib.util
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from conveyor_worker.settings import Settings as WorkerSettings

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SERVICES = ("api", "notifier", "projector", "worker")


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=60, check=False
    )


# -- Dockerfile ---------------------------------------------------------------------------


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return run(BIN / "hadolint", "--no-color", path)


def test_the_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    result = hadolint(ROOT / "Dockerfile")
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr
    broken = tmp_path / "Dockerfile"
    text = (ROOT / "Dockerfile").read_text()
    broken.write_text(text.replace("uv==0.13.9", "uv").replace("--no-cache-dir ", ""))
    result = hadolint(broken)
    assert result.returncode != 0 and "DL3013" in result.stdout and "DL3042" in result.stdout


def test_the_image_syncs_one_service_runs_as_non_root_and_has_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'uv sync --frozen --no-dev --no-editable --package "conveyor-${SERVICE}"' in text
    assert re.search(r"^USER 10001", text, re.M)
    assert re.search(
        r'^HEALTHCHECK .*\n\s+CMD \["python", "/app/entrypoint.py", "healthcheck"\]', text, re.M
    )
    assert 'ENTRYPOINT ["python", "/app/entrypoint.py"]' in text
    uv_lock = (ROOT / "uv.lock").read_text()
    assert all(f'name = "conveyor-{s}"' in uv_lock for s in (*SERVICES, "cli"))


def entrypoint() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "entrypoint", ROOT / "deploy/docker/entrypoint.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_entry_point_runs_each_service_main() -> None:
    ep = entrypoint()
    assert (*SERVICES, "cli") == ep.SERVICES
    for service in ep.SERVICES:
        assert callable(importlib.import_module(f"conveyor_{service}.main").main)
    assert ep.health_url("api", {}) == "http://127.0.0.1:8000/healthz"
    assert ep.health_url("notifier", {}) == "http://127.0.0.1:8001/healthz"
    assert ep.health_url("notifier", {"CONVEYOR_NOTIFIER_PORT": "9001"}) == (
        "http://127.0.0.1:9001/healthz"
    )
    assert ep.health_url("api", {"CONVEYOR_PORT": "9002"}) == "http://127.0.0.1:9002/healthz"
    assert ep.health_url("worker", {"CONVEYOR_METRICS_PORT": "9200"}) == (
        "http://127.0.0.1:9200/metrics"
    )
    assert ep.health_url("cli", {}) is None


@contextlib.contextmanager
def http_server(status: int) -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status, expected", [(200, 0), (503, 1)])
def test_the_healthcheck_asks_the_service(
    status: int, expected: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with http_server(status) as port:
        monkeypatch.setenv("CONVEYOR_API_PORT", str(port))
        assert entrypoint().healthcheck("api") == expected
    assert entrypoint().healthcheck("api") == 1  # nothing listens any more


# -- docker-compose.yml -------------------------------------------------------------------


def compose_check(path: Path) -> subprocess.CompletedProcess[str]:
    return run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", path)


def test_the_compose_file_passes_the_compose_spec(tmp_path: Path) -> None:
    result = compose_check(ROOT / "docker-compose.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "docker-compose.yml"
    text = (ROOT / "docker-compose.yml").read_text()
    broken.write_text(text.replace("service_completed_successfully", "service_completed"))
    assert compose_check(broken).returncode != 0


def test_compose_runs_the_system_in_order() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"nats", "postgres", "migrate", *SERVICES}
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["migrate"]["command"] == ["migrate"]
    for name in SERVICES:
        service = services[name]
        assert service["build"]["args"]["SERVICE"] == name
        assert service["healthcheck"]["test"][-1] == "healthcheck"
        assert service["depends_on"] == {
            "nats": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }
        env = service["environment"]
        assert env["NATS_URL"] == "nats://nats:4222"
        assert env["DATABASE_URL"].startswith("postgresql://")
    assert "healthcheck" in services["nats"] and "healthcheck" in services["postgres"]
    (config,) = [v for v in services["nats"]["volumes"] if v.endswith(":/etc/nats/nats.conf:ro")]
    assert (ROOT / config.split(":")[0]).resolve() == ROOT / "deploy/nats/nats.conf"


def test_compose_gives_the_worker_its_shutdown_grace() -> None:
    worker = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["worker"]
    grace = WorkerSettings(
        shutdown_grace_s=worker["environment"]["CONVEYOR_SHUTDOWN_GRACE_S"]
    ).shutdown_grace_s
    (stop_s,) = re.fullmatch(r"(\d+)s", worker["stop_grace_period"]).groups()  # type: ignore[union-attr]
    assert int(stop_s) >= grace + 5

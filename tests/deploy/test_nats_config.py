"""The NATS settings of the deployments (issue 12): deploy/nats/values.yaml rendered into the
nats.conf the official Helm chart (nats 2.14.2) would write for each of its servers, and
deploy/nats/nats.conf of docker-compose.yml, are accepted by the real nats-server
(``nats-server -t``), with JetStream on a file store and ``sync_interval: always``.

The renderer follows the chart's templates (files/config/config.yaml, jetstream.yaml,
cluster.yaml at github.com/nats-io/k8s 957650fb) for the values Conveyor sets, and refuses a
value it does not model, so a setting cannot be added to values.yaml without being checked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor_bus.permissions import SERVICES

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parents[2]
NATS = ROOT / "deploy/nats"
NATS_SERVER = Path(sys.executable).parent / "nats-server"

RELEASE = "nats"
"""The Helm release: the chart names its StatefulSet and Services after it."""

CHART_DEFAULTS: dict[str, Any] = {
    "nats": {"port": 4222},
    "cluster": {"enabled": False, "port": 6222, "replicas": 3, "noAdvertise": True, "merge": {}},
    "jetstream": {
        "enabled": False,
        "fileStore": {"enabled": True, "dir": "/data", "pvc": {"enabled": True, "size": "10Gi"}},
        "memoryStore": {"enabled": False, "maxSize": "1Gi"},
        "merge": {},
    },
    "monitor": {"enabled": True, "port": 8222},
    "merge": {},
}
"""The chart's values.yaml defaults under ``config`` for what the renderer models."""

MODELLED_TOP_LEVEL = {"config", "podTemplate", "container"}
"""values.yaml sections: ``config`` is rendered; ``podTemplate`` and ``container`` (its
``env``, checked apart) shape pods, not nats.conf."""


def deep_merge(base: dict[str, Any], over: dict[str, Any], path: str = "config") -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        assert k in base, f"values.yaml: {path}.{k} is not modelled by this test's renderer"
        out[k] = deep_merge(base[k], v, f"{path}.{k}") if isinstance(v, dict) and base[k] else v
    return out


class Raw(str):
    """A value the chart writes unquoted (its ``<< ... >>``): a size such as 20Gi."""


def render(values: dict[str, Any], ordinal: int) -> dict[str, Any]:
    """The nats.conf of pod ``<release>-<ordinal>``, as a dict."""
    assert set(values) <= MODELLED_TOP_LEVEL, f"values.yaml: {set(values) - MODELLED_TOP_LEVEL}"
    c = deep_merge(CHART_DEFAULTS, values.get("config", {}))
    conf: dict[str, Any] = {
        "server_name": f"{RELEASE}-{ordinal}",
        "lame_duck_grace_period": "10s",
        "lame_duck_duration": "30s",
        "pid_file": "/var/run/nats/nats.pid",
        "port": c["nats"]["port"],
    }
    cluster = c["cluster"]
    if cluster["enabled"]:
        routes = [
            f"nats://{RELEASE}-{i}.{RELEASE}-headless:{cluster['port']}"
            for i in range(cluster["replicas"])
        ]
        conf["cluster"] = {
            "name": RELEASE,
            "port": cluster["port"],
            "no_advertise": cluster["noAdvertise"],
            "routes": routes,
            **cluster["merge"],
        }
    if c["monitor"]["enabled"]:
        conf["http_port"] = c["monitor"]["port"]
    js = c["jetstream"]
    if js["enabled"]:
        block: dict[str, Any] = {}
        memory, file = js["memoryStore"], js["fileStore"]
        block["max_memory_store"] = Raw(memory["maxSize"]) if memory["enabled"] else 0
        if file["enabled"]:
            block["store_dir"] = file["dir"]
            if file.get("maxSize"):
                block["max_file_store"] = Raw(file["maxSize"])
            elif file["pvc"]["enabled"]:
                block["max_file_store"] = Raw(file["pvc"]["size"])
        else:
            block["max_file_store"] = 0
        conf["jetstream"] = {**block, **js["merge"]}
    return {**conf, **raw_values(c["merge"])}


def raw_values(value: Any) -> Any:
    """The chart writes a string ``<< x >>`` of ``merge`` as ``x``, unquoted."""
    if isinstance(value, dict):
        return {k: raw_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [raw_values(v) for v in value]
    if isinstance(value, str) and value.startswith("<< ") and value.endswith(" >>"):
        return Raw(value[3:-3])
    return value


def to_conf(conf: dict[str, Any]) -> str:
    """JSON, which nats-server reads, with the chart's raw values unquoted."""
    raws = {json.dumps(v): str(v) for v in _walk(conf) if isinstance(v, Raw)}
    text = json.dumps(conf, indent=2)
    for quoted, raw in raws.items():
        text = text.replace(quoted, raw)
    return text


def _walk(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _walk(v)]
    if isinstance(value, list):
        return [x for v in value for x in _walk(v)]
    return [value]


PASSWORDS = {f"CONVEYOR_NATS_{user.upper()}_PASSWORD": f"pw-{user}" for user in SERVICES}
"""The environment of a nats-server with Conveyor's users (deploy/nats/authorization.conf)."""


def nats_check(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(NATS_SERVER), "-t", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": os.environ.get("PATH", ""), **(env or {})},
    )


def chart_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((NATS / "values.yaml").read_text())
    return values


def test_the_chart_values_make_a_durable_three_server_cluster() -> None:
    conf = render(chart_values(), 0)
    assert conf["jetstream"]["sync_interval"] == "always"
    assert conf["jetstream"]["store_dir"] == "/data"
    assert conf["jetstream"]["max_memory_store"] == 0
    assert len(conf["cluster"]["routes"]) == 3
    assert conf["http_port"] == 8222  # what KEDA's trigger reads (deploy/base)


@pytest.mark.parametrize("ordinal", range(3))
def test_nats_server_accepts_the_config_the_chart_renders(ordinal: int, tmp_path: Path) -> None:
    path = tmp_path / "nats.conf"
    path.write_text(to_conf(render(chart_values(), ordinal)))
    result = nats_check(path, PASSWORDS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_nats_server_refuses_a_broken_rendering(tmp_path: Path) -> None:
    values = chart_values()
    values["config"]["jetstream"]["merge"]["sync_interval"] = "sometimes"
    path = tmp_path / "nats.conf"
    path.write_text(to_conf(render(values, 0)))
    result = nats_check(path, PASSWORDS)
    assert result.returncode != 0 and "sync_interval" in result.stdout + result.stderr
    values = chart_values()
    values["config"]["jetstream"]["merge"] = {"sync_intervall": "always"}
    path.write_text(to_conf(render(values, 0)))
    assert nats_check(path, PASSWORDS).returncode != 0


def test_the_chart_gives_each_service_its_own_user_from_a_secret(tmp_path: Path) -> None:
    """The users are conveyor_bus.permissions.SERVICES, each password a raw reference to a
    variable of the server's environment, which container.env takes from the Secret
    conveyor-nats-<user> (key password) that the services' manifests read too; without the
    variables nats-server refuses the configuration."""
    values = chart_values()
    users = render(values, 0)["authorization"]["users"]
    assert [u["user"] for u in users] == list(SERVICES)
    env = values["container"]["env"]
    for user in users:
        name = user["user"]
        variable = f"CONVEYOR_NATS_{name.upper()}_PASSWORD"
        assert user["permissions"] == SERVICES[name].config(), name
        assert isinstance(user["password"], Raw) and user["password"] == f"${variable}"
        secret = {"name": f"conveyor-nats-{name}", "key": "password"}
        assert env[variable] == {"valueFrom": {"secretKeyRef": secret}}
    assert set(env) == set(PASSWORDS)
    path = tmp_path / "nats.conf"
    path.write_text(to_conf(render(values, 0)))
    assert nats_check(path).returncode != 0  # no passwords in its environment


def test_the_renderer_refuses_values_it_does_not_model() -> None:
    values = chart_values()
    values["config"]["websocket"] = {"enabled": True}
    with pytest.raises(AssertionError, match=r"config\.websocket"):
        render(values, 0)


def test_the_compose_config_is_accepted_and_durable(tmp_path: Path) -> None:
    text = (NATS / "nats.conf").read_text()
    result = nats_check(NATS / "nats.conf", PASSWORDS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^\s*sync_interval:\s*always\s*$", text, re.M)
    assert re.search(r"^\s*store_dir:", text, re.M)
    assert re.search(r"^include authorization\.conf$", text, re.M)  # a user per service
    assert nats_check(NATS / "nats.conf").returncode != 0  # no passwords: no server
    broken = tmp_path / "nats.conf"
    broken.write_text(text.replace("sync_interval: always", "sync_interval: sometimes"))
    (tmp_path / "authorization.conf").write_text((NATS / "authorization.conf").read_text())
    assert nats_check(broken, PASSWORDS).returncode != 0

"""Offline checks of deploy/ (issue 12): the Kustomize base and each overlay, rendered here
as kustomize would, pass ``kubernetes-validate --strict``; the KEDA ScaledObject and the
CloudNativePG Cluster pass the CRD schemas vendored in deploy/schemas (their checksums first),
with unknown fields refused; and the manifests agree with the code (consumer and stream
names, the worker's shutdown grace, the images the Dockerfile builds).

Each check first shows it can fail: a manifest broken in a temporary copy is refused.
"""

from __future__ import annotations

import copy
import hashlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from conveyor_bus.permissions import SERVICES
from conveyor_bus.tokens import TokenSettings
from conveyor_events import names
from conveyor_worker.execjob import KILL_WAIT_S
from conveyor_worker.settings import Settings as WorkerSettings

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEMAS = DEPLOY / "schemas"
BIN = Path(sys.executable).parent
TREES = {"base": DEPLOY / "base", "dev": DEPLOY / "overlays/dev", "prod": DEPLOY / "overlays/prod"}
CRD_FILES = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_scaledobjects.yaml",
    ("postgresql.cnpg.io/v1", "Cluster"): "postgresql.cnpg.io_clusters.yaml",
}
IMAGES = {f"conveyor-{s}" for s in ("api", "notifier", "projector", "worker", "cli")}
"""What the Dockerfile builds (--build-arg SERVICE=...)."""

Doc = dict[str, Any]


def load_docs(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


# -- a small kustomize: what the overlays use, and nothing it does not understand -----------

KUSTOMIZATION_KEYS = {"apiVersion", "kind", "namespace", "resources", "images", "patches"}


def key(doc: Doc) -> tuple[str, str, str]:
    return doc["apiVersion"], doc["kind"], doc["metadata"]["name"]


def is_custom(doc: Doc) -> bool:
    return (doc["apiVersion"], doc["kind"]) in CRD_FILES


def merge(base: Any, patch: Any, strategic: bool) -> Any:
    """A strategic merge patch as kustomize applies one to a built-in kind (lists of named
    objects merged by name, other lists replaced), or a JSON merge patch (RFC 7386: every
    list replaced) to a custom resource, as kustomize does for kinds it has no schema of."""
    if isinstance(base, dict) and isinstance(patch, dict):
        assert not any(str(k).startswith("$") for k in patch), f"directive in {patch}"
        merged = dict(base)
        for k, v in patch.items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = merge(base[k], v, strategic) if k in base else v
        return merged
    named = (
        strategic
        and isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in [*base, *patch])
    )
    if named:
        out = [copy.deepcopy(i) for i in base]
        for item in patch:
            at = [n for n, b in enumerate(out) if b["name"] == item["name"]]
            if at:
                out[at[0]] = merge(out[at[0]], item, strategic)
            else:
                out.append(item)
        return out
    return copy.deepcopy(patch)


def pod_containers(doc: Doc) -> list[Doc]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def image_name(ref: str) -> str:
    """``registry:5000/team/name:tag`` -> ``registry:5000/team/name``."""
    head, slash, last = ref.rpartition("/")
    return head + slash + last.partition(":")[0]


def render(directory: Path) -> list[Doc]:
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(k) - KUSTOMIZATION_KEYS
    assert not unknown, f"{directory}: this test's renderer does not model {sorted(unknown)}"
    docs: list[Doc] = []
    for entry in k.get("resources", []):
        target = directory / entry
        docs += render(target) if target.is_dir() else load_docs(target)
    keys = [key(d) for d in docs]
    assert len(keys) == len(set(keys)), f"{directory}: a resource twice"
    for patch_ref in k.get("patches", []):
        assert set(patch_ref) == {"path"}, f"{directory}: only `patches: - path:` is modelled"
        for patch in load_docs(directory / patch_ref["path"]):
            assert key(patch) in keys, f"{directory}: patch of a missing {key(patch)}"
            i = keys.index(key(patch))
            docs[i] = merge(docs[i], patch, strategic=not is_custom(patch))
    for image in k.get("images", []):
        for doc in docs:
            for c in pod_containers(doc):
                if image_name(c["image"]) == image["name"]:
                    c["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    if "namespace" in k:
        for doc in docs:
            if doc["kind"] != "Namespace":
                doc["metadata"]["namespace"] = k["namespace"]
    return docs


@pytest.fixture(scope="module", params=sorted(TREES))
def tree(request: pytest.FixtureRequest) -> tuple[str, list[Doc]]:
    return request.param, render(TREES[request.param])


def only(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def env_of(container: Doc) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


# -- kubernetes-validate --strict ---------------------------------------------------------


KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
"""The oldest release the how-to supports and the newest kubernetes-validate knows."""


def kubernetes_validate(
    docs: list[Doc], tmp_path: Path, version: str = KUBERNETES_VERSIONS[-1]
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return subprocess.run(
        [BIN / "kubernetes-validate", "--strict", "--quiet", "-k", version, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_built_in_resource_passes_kubernetes_validate_strict(
    tree: tuple[str, list[Doc]], version: str, tmp_path: Path
) -> None:
    _, docs = tree
    built_in = [d for d in docs if not is_custom(d)]
    result = kubernetes_validate(built_in, tmp_path, version)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout


def test_kubernetes_validate_refuses_an_unknown_field(tmp_path: Path) -> None:
    api = copy.deepcopy(only(render(TREES["prod"]), "Deployment", "conveyor-api"))
    assert kubernetes_validate([api], tmp_path).returncode == 0
    api["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGt"] = {}
    result = kubernetes_validate([api], tmp_path)
    assert result.returncode != 0
    assert "httpGt" in result.stdout


# -- custom resources against the vendored CRDs -------------------------------------------


def vendored_table() -> dict[str, str]:
    """file -> sha256, from deploy/schemas/README.md."""
    text = (SCHEMAS / "README.md").read_text()
    return dict(re.findall(r"^\| `([^`]+\.yaml)` \|.*\| `([0-9a-f]{64})` \|$", text, re.M))


def test_vendored_schemas_are_the_recorded_files() -> None:
    table = vendored_table()
    assert set(table) == {p.name for p in SCHEMAS.glob("*.yaml")} == set(CRD_FILES.values())
    for name, sha256 in table.items():
        assert hashlib.sha256((SCHEMAS / name).read_bytes()).hexdigest() == sha256, name


def strict(schema: Any) -> Any:
    """The schema with unknown fields refused wherever the CRD lists an object's fields (as
    the API server's strict field validation does; it would prune them otherwise)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_validator(api_version: str, kind: str) -> jsonschema_rs.Draft4Validator:
    crd = yaml.safe_load((SCHEMAS / CRD_FILES[api_version, kind]).read_text())
    assert crd["spec"]["names"]["kind"] == kind
    version = api_version.rpartition("/")[2]
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    return jsonschema_rs.Draft4Validator(strict(served["schema"]["openAPIV3Schema"]))


def crd_errors(doc: Doc) -> list[str]:
    validator = crd_validator(doc["apiVersion"], doc["kind"])
    return [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(doc)]


def test_custom_resources_pass_their_vendored_crd_schemas(tree: tuple[str, list[Doc]]) -> None:
    _, docs = tree
    custom = [d for d in docs if is_custom(d)]
    assert {(d["apiVersion"], d["kind"]) for d in custom} == set(CRD_FILES)
    for doc in custom:
        assert crd_errors(doc) == [], key(doc)


def test_crd_check_refuses_a_misspelt_field_and_a_wrong_type() -> None:
    docs = render(TREES["prod"])
    scaled = copy.deepcopy(only(docs, "ScaledObject", "conveyor-worker"))
    scaled["spec"]["triggers"][0]["metdata"] = scaled["spec"]["triggers"][0].pop("metadata")
    assert any("metdata" in e for e in crd_errors(scaled))
    cluster = copy.deepcopy(only(docs, "Cluster", "conveyor-db"))
    cluster["spec"]["instances"] = "three"
    assert crd_errors(cluster) != []


# -- what the manifests must say ----------------------------------------------------------


def test_deployments_have_probes_resources_and_run_as_non_root(
    tree: tuple[str, list[Doc]],
) -> None:
    _, docs = tree
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {f"conveyor-{s}" for s in ("api", "notifier", "projector", "worker")}
    for name, d in deployments.items():
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for c in pod["containers"]:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert "httpGet" in c[probe], (name, probe)
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], name
    (api,) = deployments["conveyor-api"]["spec"]["template"]["spec"]["containers"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_the_projector_runs_one_at_a_time(tree: tuple[str, list[Doc]]) -> None:
    _, docs = tree
    projector = only(docs, "Deployment", "conveyor-projector")
    assert projector["spec"]["replicas"] == 1
    assert projector["spec"]["strategy"] == {"type": "Recreate"}


def test_the_worker_grace_fits_its_termination_grace(tree: tuple[str, list[Doc]]) -> None:
    _, docs = tree
    pod = only(docs, "Deployment", "conveyor-worker")["spec"]["template"]["spec"]
    (worker,) = pod["containers"]
    env = env_of(worker)
    settings = WorkerSettings(
        shutdown_grace_s=env["CONVEYOR_SHUTDOWN_GRACE_S"], exec_grace_s=env["CONVEYOR_EXEC_GRACE_S"]
    )
    pre_stop = worker.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pre_stop_s = float(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0.0
    # the longest shutdown: the grace runs out on an exec job, whose program then gets
    # SIGTERM, exec_grace_s, SIGKILL and KILL_WAIT_S to die; then the hand-back (+ margin)
    longest = pre_stop_s + settings.shutdown_grace_s + settings.exec_grace_s + KILL_WAIT_S
    assert pod["terminationGracePeriodSeconds"] >= longest + 5


def test_services_pdbs_and_ingress_select_what_exists(tree: tuple[str, list[Doc]]) -> None:
    _, docs = tree
    pod_labels = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in docs
        if d["kind"] == "Deployment"
    }

    def selects(selector: dict[str, str]) -> list[str]:
        return [n for n, labels in pod_labels.items() if selector.items() <= labels.items()]

    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    for name, s in services.items():
        assert selects(s["spec"]["selector"]) == [name]
    for pdb in (d for d in docs if d["kind"] == "PodDisruptionBudget"):
        assert selects(pdb["spec"]["selector"]["matchLabels"]) == [pdb["metadata"]["name"]]
    (rule,) = only(docs, "Ingress", "conveyor")["spec"]["rules"]
    routes = {p["path"]: p["backend"]["service"]["name"] for p in rule["http"]["paths"]}
    assert routes == {"/ws": "conveyor-notifier", "/": "conveyor-api"}
    config = only(docs, "ConfigMap", "conveyor-config")["data"]
    assert config["CONVEYOR_ALLOWED_HOSTS"] == rule["host"]
    assert config["CONVEYOR_NOTIFIER_URL"].endswith(f"://{rule['host']}/ws")


def test_keda_scales_the_worker_on_its_consumers_lag(tree: tuple[str, list[Doc]]) -> None:
    _, docs = tree
    scaled = only(docs, "ScaledObject", "conveyor-worker")["spec"]
    worker = only(docs, "Deployment", scaled["scaleTargetRef"]["name"])
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    concurrency = env_of(container)["CONVEYOR_CONCURRENCY"]
    assert scaled["minReplicaCount"] == 1 < scaled["maxReplicaCount"]
    triggers = scaled["triggers"]
    assert {t["type"] for t in triggers} == {"nats-jetstream"}
    assert {t["metadata"]["stream"] for t in triggers} == {names.STREAM}
    consumers = {t["name"]: t["metadata"]["consumer"] for t in triggers}
    assert consumers == {p: names.run_consumer(p) for p in names.PRIORITIES}
    assert {t["metadata"]["lagThreshold"] for t in triggers} == {concurrency}
    modifiers = scaled["advanced"]["scalingModifiers"]
    assert modifiers["formula"] == " + ".join(names.PRIORITIES)
    assert modifiers["target"] == concurrency
    namespace = worker["metadata"].get("namespace", "conveyor")
    for t in triggers:
        host = t["metadata"]["natsServerMonitoringEndpoint"]
        assert host == f"nats-headless.{namespace}.svc.cluster.local:8222"


def test_postgres_and_the_migration_job(tree: tuple[str, list[Doc]]) -> None:
    overlay, docs = tree
    cluster = only(docs, "Cluster", "conveyor-db")
    assert cluster["spec"]["instances"] == (1 if overlay == "dev" else 3)
    secrets = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for d in docs
        for c in pod_containers(d)
        for e in c.get("env", [])
        if e["name"] == "DATABASE_URL"
    }
    assert secrets == {f"{cluster['metadata']['name']}-app"}  # the Secret the operator writes
    job = only(docs, "Job", "conveyor-migrate")
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert image_name(migrate["image"]).endswith("cli") and migrate["args"] == ["migrate"]
    help_ = subprocess.run(
        [BIN / "conveyor", "migrate", "--help"], capture_output=True, timeout=60, check=False
    )
    assert help_.returncode == 0


def test_images_are_the_dockerfiles_and_overlays_name_their_registry(
    tree: tuple[str, list[Doc]],
) -> None:
    overlay, docs = tree
    images = {c["image"] for d in docs for c in pod_containers(d)}
    if overlay == "base":
        assert images == IMAGES
    else:
        assert all("/" in i and image_name(i) != i for i in images), images
        built = {image_name(i).rpartition("/")[2].removeprefix("conveyor-") for i in images}
        assert built == {i.removeprefix("conveyor-") for i in IMAGES}


def test_prod_reads_the_api_and_feed_tokens_from_a_mounted_secret() -> None:
    docs = render(TREES["prod"])
    for name in ("conveyor-api", "conveyor-notifier"):
        pod = only(docs, "Deployment", name)["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        path = Path(env_of(container)["CONVEYOR_TOKENS_FILE"])
        assert TokenSettings(tokens_file=path).tokens_file == path  # the setting it names
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["tokens"] == str(path.parent)
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["tokens"]["secret"] == {"secretName": "conveyor-tokens"}
        assert mounts["tmp"] == "/tmp"  # the base's mount kept by the patch


def test_each_service_logs_in_to_nats_as_its_own_user(tree: tuple[str, list[Doc]]) -> None:
    """Each Deployment (and the migration Job, as admin) builds its NATS_URL from its own
    user and the password of the Secret conveyor-nats-<user>, the one the NATS chart's values
    give the server (deploy/nats/values.yaml); nothing else hands out a NATS_URL."""
    _, docs = tree
    values = yaml.safe_load((DEPLOY / "nats/values.yaml").read_text())
    server = {
        v["valueFrom"]["secretKeyRef"]["name"]: name
        for name, v in values["container"]["env"].items()
    }
    assert "NATS_URL" not in only(docs, "ConfigMap", "conveyor-config")["data"]
    seen = set()
    for doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        component = doc["metadata"]["labels"]["app.kubernetes.io/component"]
        user = "admin" if component == "migrate" else component
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        env = [e["name"] for e in container["env"]]
        assert env.index("NATS_PASSWORD") < env.index("NATS_URL"), component  # $(...) order
        secret = next(e for e in container["env"] if e["name"] == "NATS_PASSWORD")
        ref = secret["valueFrom"]["secretKeyRef"]
        assert ref == {"name": f"conveyor-nats-{user}", "key": "password"}
        assert server[ref["name"]] == f"CONVEYOR_NATS_{user.upper()}_PASSWORD"
        assert env_of(container)["NATS_URL"] == f"nats://{user}:$(NATS_PASSWORD)@nats:4222"
        seen.add(user)
    assert seen == set(SERVICES)  # every user of the server is someone's

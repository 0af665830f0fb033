"""The REST API fuzzed from its own OpenAPI schema (issue 3, test 11).

Schemathesis reads ``/openapi.json`` from the running api (real NATS JetStream and
PostgreSQL behind it) and runs all its phases: the schema's examples, coverage (boundary and
just-out-of-bounds values of every parameter and field, unsupported methods), fuzzing (valid
and invalid requests) and stateful sequences (submit, then get/stop/restart/delete/events of
the job it created, following the links it infers from the schema). Every check applies (see
``schemathesis.toml`` for the one exception the SPEC makes): no 5xx; only status codes the
schema documents for the operation, with the documented content type and a body that matches
the documented schema; schema-valid requests accepted and invalid ones refused with a 4xx; a
created job found at once and a deleted one gone at once.

The CLI is the driver because it runs every phase (the pytest plugin's lazy loader does not
run under this pytest). Bounded: a few examples per operation and phase, well under a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.system import System

pytestmark = [pytest.mark.e2e, pytest.mark.long]

CONFIG = Path(__file__).with_name("schemathesis.toml")
HOOKS = Path(__file__).with_name("fuzz_hooks.py")
ST = Path(sys.executable).with_name("st")
JSON_CT = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def fuzzed(
    nats_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    """A system of its own with one worker (so jobs really run, fail and stop). Fuzzed
    CPU-bound sleeps (``busy``) fail at once (the worker does not allow them); the worker is
    killed at the end all the same, since fuzzed sleeps last up to a day."""
    logs = tmp_path_factory.mktemp("logs")
    with System(nats_url, database_url, logs, workers=1) as system:
        yield system
        system.kill("worker-1")


OPTIONS = [
    *("--max-examples", "25"),  # per operation and phase
    *("--request-timeout", "10"),
    *("--suppress-health-check", "all"),
    *("--generation-database", "none"),  # nothing kept between runs
    "--no-shrink",  # bounded also when it fails; the report still has a curl to reproduce
]


def schemathesis(schema: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ST), "--config-file", str(CONFIG), "--no-color", "run", schema, *OPTIONS, *args],
        capture_output=True, text=True, timeout=100,
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
    )  # fmt: skip


def test_the_api_conforms_to_its_own_openapi_schema(fuzzed: System) -> None:
    started = time.monotonic()
    run = schemathesis(f"{fuzzed.api_url}/openapi.json")
    took = time.monotonic() - started

    assert run.returncode == 0, (
        f"{run.stdout}\n{run.stderr}\n--- api log:\n{fuzzed.log('api')[-3000:]}"
    )
    summary = run.stdout[run.stdout.rfind("SUMMARY") :]
    document = httpx.get(f"{fuzzed.api_url}/openapi.json").json()
    operations = sum(len(methods) for methods in document["paths"].values())
    assert f"Tested: {operations}" in summary, summary  # every operation, none skipped
    assert took < 60, f"the fuzz run took {took:.0f} s"


def test_the_fuzzer_catches_a_response_the_schema_does_not_document(
    fuzzed: System, tmp_path: Path
) -> None:
    """Control: the same run, told a schema in which POST /jobs cannot answer 422, fails (so
    a pass above means conformance, not a harness that cannot see)."""
    schema = httpx.get(f"{fuzzed.api_url}/openapi.json").json()
    del schema["paths"]["/api/v1/jobs"]["post"]["responses"]["422"]
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(schema))

    run = schemathesis(
        str(path), "--url", fuzzed.api_url, "--include-path", "/api/v1/jobs",
        "--include-method", "POST", "--phases", "coverage",
    )  # fmt: skip

    assert run.returncode == 1, run.stdout
    assert "Undocumented status code" in run.stdout and "Received: 422" in run.stdout, run.stdout


def test_a_read_right_after_a_write_never_contradicts_it(fuzzed: System) -> None:
    """What the fuzzer's stateful checks ask, made deterministic by stopping the projector:
    a job answered 201 is found at once, a job answered 204 on delete is gone at once, even
    though the read model has not seen either write."""
    later = "2999-01-01T00:00:00Z"
    old = fuzzed.submit("noop", run_at=later)
    fuzzed.wait_for(old["id"], "pending")  # its row is in the read model
    fuzzed.stop("projector")
    try:
        new = fuzzed.submit("noop", run_at=later)
        got = fuzzed.job(new["id"])
        assert got.status_code == 200, got.text
        assert got.json()["id"] == new["id"] and got.json()["status"] == "pending"

        assert fuzzed.http.post(f"/api/v1/jobs/{old['id']}/stop").status_code == 202
        assert fuzzed.http.delete(f"/api/v1/jobs/{old['id']}").status_code == 204
        assert fuzzed.job(old["id"]).status_code == 404
        listed = fuzzed.http.get("/api/v1/jobs", params={"q": old["id"]}).json()["items"]
        assert [j["id"] for j in listed] == [old["id"]]  # the row is still there: the control
    finally:
        fuzzed.start("projector", "projector")
    fuzzed.wait_gone(old["id"])


def _nest(leaf: Any, shape: str) -> Any:
    """``leaf`` wrapped in a list or an object for each letter (``l``, ``d``) of ``shape``."""
    for kind in reversed(shape):
        leaf = [leaf] if kind == "l" else {"k": leaf}
    return leaf


# Built inside the test from what hypothesis draws, so a failing example prints as a short
# description, not a thousand levels of brackets.
shapes = st.one_of(
    # nested, shallow to far past both the payload limit and the JSON parser's
    st.integers(1, 1200).flatmap(lambda n: st.text(alphabet="ld", min_size=n, max_size=n)),
    # oversized: around the body limit, in many small values or one long string
    st.sampled_from(["many", "long"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(shape=shapes, size=st.integers(0, 60_000), batch=st.booleans())
def test_nested_and_oversized_payloads_are_refused_never_a_5xx(
    fuzzed: System, shape: str, size: int, batch: bool
) -> None:
    """Payloads the schema-driven fuzzer does not make: nested hundreds of levels deep, or
    sized around the 1 MiB body limit. Each is refused with a problem that names what is
    wrong (413 over the limit, 400 too deep for the JSON parser, 422 past the payload's 64
    levels or for the unknown field), never a 5xx and never written."""
    if shape == "many":
        payload: Any = {"seconds": 1, "pad": ["x" * 64] * (15_000 + size // 20)}
    elif shape == "long":
        payload = {"pad": "y" * (1_020_000 + size)}
    else:
        payload = _nest(size, shape)
    body: dict[str, Any] = {"type": "sleep", "payload": payload}
    path = "/api/v1/jobs"
    if batch:
        body, path = {"jobs": [{"type": "noop"}, body]}, "/api/v1/jobs/batch"
    response = fuzzed.http.post(path, content=json.dumps(body), headers=JSON_CT)

    assert response.status_code in (400, 413, 422), response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"
    detail = response.json()["detail"]
    if response.status_code == 422 and shape.startswith("d") and len(shape) > 63:
        assert "nested deeper than 64 levels" in detail or "unknown field" in detail, detail

"""``exec`` jobs end to end (issue 11): examples/progress/progress.c, built with the machine's
``cc``, run by a real worker whose ``CONVEYOR_EXEC_ALLOW`` names it: its progress and JSON
result, an exit code and a signal with the end of stderr, a stop and a timeout killing its
whole process tree (checked pid by pid), what it leaves running killed when it ends, and a
program outside the allow-list refused without a retry."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from support.system import System

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SOURCE = Path(__file__).parents[2] / "examples" / "progress" / "progress.c"
WORKER = "exec-worker"
GRACE_S = 1.0


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the compiled example, ``progress`` (symlinks resolved)."""
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler: the exec tests build examples/progress/progress.c with cc")
    where = Path(os.path.realpath(tmp_path_factory.mktemp("programs")))
    built = subprocess.run(
        [cc, "-O2", "-Wall", "-o", str(where / "progress"), str(SOURCE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, f"cc failed:\n{built.stderr}"
    return where


@pytest.fixture(scope="module")
def progress(programs: Path) -> str:
    return str(programs / "progress")


@pytest.fixture(scope="module")
def system(
    nats_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory, progress: str
) -> Iterator[System]:
    logs = tmp_path_factory.mktemp("logs")
    with System(nats_url, database_url, logs, workers=0) as system:
        system.start_worker(
            WORKER, CONVEYOR_EXEC_ALLOW=progress, CONVEYOR_EXEC_GRACE_S=str(GRACE_S)
        )
        wait_served(system, "exec")
        yield system


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The job's cwd (no program writes into the checkout)."""
    return Path(os.path.realpath(tmp_path))


def wait_served(system: System, name: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {t["name"]: t for t in system.http.get("/api/v1/types").json()["items"]}
        if WORKER in found.get(name, {}).get("workers", []):
            return
        time.sleep(0.1)
    raise AssertionError(f"no live worker runs {name}: {system.log(WORKER)[-2000:]}")


def submit(system: System, argv: list[str], workdir: Path, **fields: Any) -> str:
    job = system.submit("exec", payload={"argv": argv, "cwd": str(workdir)}, **fields)
    return str(job["id"])


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has died; its new parent may never reap it here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def pids_in(path: Path, n: int, timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():  # written to a temporary name, then renamed: whole when there
            pids = [int(line) for line in path.read_text().split()]
            assert len(pids) == n, pids
            return pids
        time.sleep(0.05)
    raise AssertionError(f"the program never wrote {path}")


def assert_all_dead(pids: list[int], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [pid for pid in pids if alive(pid)]
    for pid in survivors:  # do not leave them to the next test
        os.kill(pid, 9)
    assert survivors == [], f"these processes outlived their job: {survivors} of {pids}"


def seconds(job: dict[str, Any], start: str, end: str) -> float:
    return (datetime.fromisoformat(job[end]) - datetime.fromisoformat(job[start])).total_seconds()


def test_a_compiled_program_reports_progress_and_completes_with_its_json_result(
    system: System, progress: str, workdir: Path
) -> None:
    job_id = submit(system, [progress, "4", "0.3"], workdir)
    done = system.wait_for(job_id, "completed")
    assert done["result"]["steps"] == 4 and done["result"]["exit_code"] == 0
    assert done["result"]["seconds_per_step"] == 0.3 and done["result"]["pid"] > 0
    assert done["progress"] == 100.0 and done["message"] == "step 4/4"
    reported = [
        (e["data"]["progress"], e["data"]["message"])
        for e in system.events(job_id)
        if e["type"] == "job.progressed"
    ]
    assert len(reported) >= 2 and reported[-1] == (100.0, "step 4/4")
    assert [p for p, _ in reported] == sorted(p for p, _ in reported)
    assert set(reported) <= {(25.0, "step 1/4"), (50.0, "step 2/4"), (75.0, "step 3/4"),
                             (100.0, "step 4/4")}  # fmt: skip


def test_a_non_zero_exit_fails_with_the_code_and_the_end_of_stderr_and_is_retried(
    system: System, progress: str, workdir: Path
) -> None:
    job_id = submit(system, [progress, "2", "0", "3"], workdir, max_attempts=2)
    failed = system.wait_for(job_id, "failed", attempt=2)
    error = failed["error"]
    assert error["type"] == "ProgramFailed"
    assert error["message"].startswith(f"{progress} exited with code 3; the end of its stderr:\n")
    assert error["message"].endswith(
        "progress: step 1/2\nprogress: step 2/2\nprogress: failing with exit code 3 on purpose\n"
    )


def test_a_death_by_a_signal_is_named(system: System, progress: str, workdir: Path) -> None:
    job_id = submit(system, [progress, "--signal", "11", "1", "0"], workdir)
    error = system.wait_for(job_id, "failed")["error"]
    assert error["type"] == "ProgramFailed"
    assert error["message"].startswith(f"{progress} was killed by SIGSEGV (signal 11); the end")
    assert "dying by signal 11 on purpose" in error["message"]
    assert not list(workdir.glob("core*"))


def test_a_stop_kills_the_whole_process_tree(system: System, progress: str, workdir: Path) -> None:
    pidfile = workdir / "pids"
    job_id = submit(system, [progress, "--fork", "--pidfile", str(pidfile), "1000", "0.1"], workdir)
    system.wait_for(job_id, "running")
    pids = pids_in(pidfile, 3)  # the program, its child, its grandchild
    assert all(alive(pid) for pid in pids)
    asked = time.monotonic()
    assert system.http.post(f"/api/v1/jobs/{job_id}/stop").status_code == 202
    stopped = system.wait_for(job_id, "stopped", timeout=15)
    assert time.monotonic() - asked < 2 + GRACE_S + 2  # SIGTERM ends it: no grace needed
    assert stopped["result"] is None
    assert_all_dead(pids)


def test_a_timeout_kills_a_tree_that_ignores_sigterm(
    system: System, progress: str, workdir: Path
) -> None:
    pidfile = workdir / "pids"
    argv = [progress, "--fork", "--ignore-term", "--pidfile", str(pidfile), "1000", "0.1"]
    job_id = submit(system, argv, workdir, timeout_s=2)
    system.wait_for(job_id, "running")
    pids = pids_in(pidfile, 3)
    failed = system.wait_for(job_id, "failed", timeout=20)
    assert failed["error"]["type"] == "Timeout"
    # SIGTERM ignored: the group got SIGKILL only after the grace period
    assert seconds(failed, "started_at", "finished_at") >= 2 + GRACE_S - 0.2
    assert_all_dead(pids)


def test_what_a_program_leaves_running_dies_with_its_job(
    system: System, progress: str, workdir: Path
) -> None:
    """The child and grandchild still hold the program's stdout when it exits: the job ends
    with the program all the same, and they are killed."""
    pidfile = workdir / "pids"
    job_id = submit(system, [progress, "--fork", "--pidfile", str(pidfile), "2", "0.1"], workdir)
    done = system.wait_for(job_id, "completed")
    assert done["result"]["steps"] == 2
    assert seconds(done, "started_at", "finished_at") < 3
    pids = pids_in(pidfile, 3)
    assert pids[0] == done["result"]["pid"]
    assert_all_dead(pids)


def test_a_program_outside_the_allow_list_is_refused_without_a_retry(
    system: System, workdir: Path
) -> None:
    marker = workdir / "ran"
    job_id = submit(system, ["/bin/sh", "-c", f"touch {marker}"], workdir, max_attempts=3)
    failed = system.wait_for(job_id, "failed")
    assert failed["attempt"] == 1
    assert failed["error"]["type"] == "ProgramNotAllowed"
    sh = os.path.realpath("/bin/sh")
    assert failed["error"]["message"].startswith(f"program /bin/sh (resolved to {sh}) is not")
    assert "CONVEYOR_EXEC_ALLOW" in failed["error"]["message"]
    started = [e for e in system.events(job_id) if e["type"] == "job.started"]
    assert len(started) == 1 and not marker.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"argv": []}, "payload.argv"),
        ({"argv": [""]}, "payload.argv[0]"),
        ({"argv": ["/bin/true"], "cwd": "relative"}, "payload.cwd"),
        ({"argv": ["/bin/true"], "shell": True}, "payload.shell"),
    ],
)
def test_a_bad_exec_payload_is_refused_at_submit(
    system: System, payload: dict[str, Any], field: str
) -> None:
    response = system.http.post("/api/v1/jobs", json={"type": "exec", "payload": payload})
    assert response.status_code == 422, response.text
    assert field in response.text

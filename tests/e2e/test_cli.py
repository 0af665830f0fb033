"""The ``conveyor`` command against the real services."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from support.system import System

pytestmark = pytest.mark.e2e


def conveyor(system: System, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CONVEYOR_API_URL": system.api_url,
        "CONVEYOR_NOTIFIER_URL": system.ws_url,
        "NATS_URL": system.nats_url,
        "DATABASE_URL": system.database_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "conveyor_cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_submit_wait_follows_the_job_to_completion(system: System) -> None:
    done = conveyor(
        system, "submit", "sleep", "--payload", '{"seconds": 0.6, "steps": 3}', "--wait"
    )
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.splitlines()[0]
    assert "completed" in done.stdout
    assert "job.progressed 100%" in done.stderr  # not a tty: one line per event
    assert system.wait_for(job_id, "completed")["progress"] == 100.0

    failed = conveyor(
        system, "submit", "sleep", "--payload", '{"seconds": 0, "fail": true}', "--wait"
    )
    assert failed.returncode == 1 and "failed" in failed.stdout


def test_list_show_history_stop_restart_delete(system: System) -> None:
    submitted = conveyor(
        system, "submit", "sleep", "--priority", "high", "--payload", '{"seconds": 30, "steps": 30}'
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    system.wait_for(job_id, "running")

    listed = conveyor(system, "list", "--status", "running", "--json")
    assert job_id in [j["id"] for j in json.loads(listed.stdout)["items"]]
    shown = json.loads(conveyor(system, "show", job_id, "--json").stdout)
    assert shown["priority"] == "high" and shown["status"] == "running"

    assert conveyor(system, "stop", job_id).returncode == 0
    system.wait_for(job_id, "stopped")
    refused = conveyor(system, "stop", job_id)
    assert refused.returncode == 1 and "409" in refused.stderr and "stopped" in refused.stderr
    assert conveyor(system, "restart", job_id).returncode == 0
    system.wait_for(job_id, "running", attempt=2)
    conveyor(system, "stop", job_id)
    system.wait_for(job_id, "stopped")
    assert conveyor(system, "delete", job_id).returncode == 0
    system.wait_gone(job_id)

    history = [
        json.loads(line)
        for line in conveyor(system, "history", job_id, "--json").stdout.splitlines()
    ]
    assert [e["type"] for e in history][-1] == "job.deleted"
    assert "job.restarted" in [e["type"] for e in history]
    missing = conveyor(system, "show", job_id)
    assert missing.returncode == 1 and "404" in missing.stderr


def test_watch_prints_live_events(system: System) -> None:
    env = {**os.environ, "CONVEYOR_NOTIFIER_URL": system.ws_url}
    watcher = subprocess.Popen(
        [sys.executable, "-m", "conveyor_cli.main", "watch"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        job = system.submit("noop")
        system.wait_for(job["id"], "completed")
        seen: list[str] = []
        assert watcher.stdout is not None
        while len(seen) < 3:
            event = json.loads(watcher.stdout.readline())
            if event["job_id"] == job["id"]:
                seen.append(event["type"])
        assert seen == ["job.submitted", "job.started", "job.completed"]
    finally:
        watcher.terminate()
        watcher.wait(10)


def test_verify_and_replay(system: System) -> None:
    job = system.submit("noop")
    system.wait_for(job["id"], "completed")
    verified = conveyor(system, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "OK: the read model equals the fold of the log" in verified.stdout
    replayed = conveyor(system, "replay")
    assert replayed.returncode == 0, replayed.stderr
    assert system.wait_for(job["id"], "completed")["id"] == job["id"]
    again = conveyor(system, "verify")
    assert again.returncode == 0, again.stdout

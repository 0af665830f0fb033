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


def test_submit_wait_follows_the_job_to_completion(system: System) -> None:
    done = system.conveyor("submit", "sleep", "--payload", '{"seconds": 0.6, "steps": 3}', "--wait")
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.splitlines()[0]
    assert "completed" in done.stdout
    assert "job.progressed 100%" in done.stderr  # not a tty: one line per event
    assert system.wait_for(job_id, "completed")["progress"] == 100.0

    failed = system.conveyor(
        "submit", "sleep", "--payload", '{"seconds": 0, "fail": true}', "--wait"
    )
    assert failed.returncode == 1 and "failed" in failed.stdout


def test_list_show_history_stop_restart_delete(system: System) -> None:
    submitted = system.conveyor(
        "submit", "sleep", "--priority", "high", "--payload", '{"seconds": 30, "steps": 30}'
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    system.wait_for(job_id, "running")

    listed = system.conveyor("list", "--status", "running", "--json")
    assert job_id in [j["id"] for j in json.loads(listed.stdout)["items"]]
    shown = json.loads(system.conveyor("show", job_id, "--json").stdout)
    assert shown["priority"] == "high" and shown["status"] == "running"

    assert system.conveyor("stop", job_id, "--reason", "wrong input").returncode == 0
    stopped = system.wait_for(job_id, "stopped")
    refused = system.conveyor("stop", job_id)
    assert refused.returncode == 1 and "409" in refused.stderr and "stopped" in refused.stderr
    assert system.conveyor("restart", job_id).returncode == 0
    system.wait_for(job_id, "running", attempt=2)
    system.conveyor("stop", job_id)
    system.wait_for(job_id, "stopped")
    assert system.conveyor("delete", job_id, "--reason", "cleanup").returncode == 0
    system.wait_gone(job_id)
    then = system.conveyor("show", job_id, "--as-of", stopped["finished_at"])
    assert then.returncode == 0, then.stderr
    assert "         status: stopped" in then.stdout.splitlines()
    assert "      attempt 1: stopped" in then.stdout
    table = system.conveyor("history", job_id).stdout.splitlines()
    assert table[0].split()[:7] == ["SEQ", "AT", "TYPE", "WHO", "FROM", "REQUEST", "DETAILS"]
    reasons = [line for line in table if 'reason: "' in line]
    assert [line.split()[2] for line in reasons] == ["job.stop_requested", "job.deleted"]
    assert "user:anonymous" in reasons[0] and "127.0.0.1" in reasons[0]
    assert reasons[0].endswith('reason: "wrong input"')

    history = [
        json.loads(line)
        for line in system.conveyor("history", job_id, "--json").stdout.splitlines()
    ]
    assert [e["type"] for e in history][-1] == "job.deleted"
    assert "job.restarted" in [e["type"] for e in history]
    missing = system.conveyor("show", job_id)
    assert missing.returncode == 1 and "404" in missing.stderr


def test_bulk_counts_first_asks_then_acts_on_a_filter_or_ids(system: System) -> None:
    ids = [system.submit("sleep", payload={"seconds": 317.5, "steps": 1})["id"] for _ in range(3)]
    for job_id in ids:
        system.wait_projected(job_id, "pending", "running")

    unasked = system.conveyor("bulk", "stop", "-q", "317.5")
    assert unasked.returncode == 1, unasked.stderr
    assert "3 job(s) match filter q=317.5; stop applies to 3" in unasked.stderr
    assert "not a terminal, so not asking: pass --yes" in unasked.stderr
    assert all(not system.job(i).json()["stop_requested"] for i in ids)  # nothing done

    done = system.conveyor("bulk", "stop", "-q", "317.5", "--yes", "--reason", "bad batch")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "stop: 3 of 3 acted, 0 refused"
    for job_id in ids:
        system.wait_for(job_id, "stopped")
    [asked] = [e for e in system.events(ids[0]) if e["type"] == "job.stop_requested"]
    assert asked["data"]["reason"] == "bad batch", asked

    missing = "01KA0000000000000000000000"
    partly = system.conveyor("bulk", "delete", "--ids", *ids, missing, "--yes", "--json")
    assert partly.returncode == 3, partly.stderr  # some refused
    answer = json.loads(partly.stdout)
    assert (answer["matched"], answer["acted"]) == (4, 3), answer
    assert answer["refused"] == [{"id": missing, "reason": f"job {missing} not found"}]
    for job_id in ids:
        system.wait_gone(job_id)

    both = system.conveyor("bulk", "restart", "--ids", ids[0], "--status", "failed", "--yes")
    assert both.returncode == 1 and "not both" in both.stderr
    unknown = system.conveyor("bulk", "restart", "--status", "faild")
    assert unknown.returncode == 2 and "unknown status faild" in unknown.stderr


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
    verified = system.conveyor("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "OK: the read model equals the fold of the log" in verified.stdout
    replayed = system.conveyor("replay")
    assert replayed.returncode == 0, replayed.stderr
    assert system.wait_for(job["id"], "completed")["id"] == job["id"]
    again = system.conveyor("verify")
    assert again.returncode == 0, again.stdout

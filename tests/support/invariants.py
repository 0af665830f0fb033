"""SPEC §6 checked at the end of a fault test, through the real services and the real log.

Histories are read from the raw log (:func:`read_history`, :func:`raw_histories`), never
through the API's events endpoint or the event store: those leave out what they take for
poison, an event the transitions table forbids among it, so a second completion or a zombie's
late write would not show there. No test but the poison ones puts poison on the event log, so
a message that is not an event of its subject's job fails the test that reads it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections import defaultdict
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

import msgspec
from nats.aio.client import Client

from conveyor_bus import DirectGetter, StoredMsg, connect
from conveyor_events import AnyEvent, decode_event, encode_event, names, runnable, subject_of
from conveyor_events.invariants import history_problems
from conveyor_events.names import Priority
from conveyor_events.poison import Poison, read_event
from support.system import System

TERMINAL = ("completed", "failed", "stopped")

T = TypeVar("T")


async def read_history(nc: Client, job_id: str) -> list[AnyEvent]:
    """The job's events as stored in the log, every one of them, oldest first."""
    msgs = await DirectGetter(nc).all_by_subject(names.STREAM, names.job_subjects(job_id))
    return [_event(m) for m in msgs]


async def read_histories(nc: Client, job_ids: Iterable[str]) -> dict[str, list[AnyEvent]]:
    """The stored events of each of these jobs (an empty list for a job not in the log), in
    one pass over the whole event log (pages of direct gets), however many jobs."""
    wanted = set(job_ids)
    out: dict[str, list[AnyEvent]] = defaultdict(list)
    for m in await DirectGetter(nc).all_by_subject(names.STREAM, names.EVENTS_ALL):
        job_id = names.job_id_of(m.subject)
        if job_id in wanted:
            out[job_id].append(_event(m))
    return {job_id: out.get(job_id, []) for job_id in wanted}


def raw_history(nats_url: str, job_id: str) -> list[AnyEvent]:
    """:func:`read_history` for a sync test."""
    return raw_histories(nats_url, [job_id])[job_id]


def raw_histories(nats_url: str, job_ids: Iterable[str]) -> dict[str, list[AnyEvent]]:
    """:func:`read_histories` for a sync test."""

    async def read() -> dict[str, list[AnyEvent]]:
        nc = await connect(nats_url, "test-raw-history")
        try:
            return await read_histories(nc, job_ids)
        finally:
            await nc.close()

    return _run(read())


def forge(nats_url: str, *events: AnyEvent, priority: Priority = "regular") -> list[int]:
    """Publish ``events`` straight onto their jobs' subjects, without the event store's
    expected-sequence check: what a zombie's write would look like had fencing failed (the
    control of a check that must catch one). Their sequences."""

    async def publish() -> list[int]:
        nc = await connect(nats_url, "test-forge")
        try:
            js = nc.jetstream()
            acks = [await js.publish(subject_of(e, priority), encode_event(e)) for e in events]
            return [ack.seq for ack in acks]
        finally:
            await nc.close()

    return _run(publish())


def as_frames(events: Iterable[AnyEvent]) -> list[dict[str, Any]]:
    """Events as plain JSON values (their stored form), for checks written against frames."""
    return [msgspec.to_builtins(e) for e in events]


def _event(m: StoredMsg) -> AnyEvent:
    read = read_event(m.subject, m.data)
    if isinstance(read, Poison):
        raise AssertionError(
            f"poison in the event log at seq {m.seq} on {m.subject}: {read.kind}: {read.reason}"
        )
    return read


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even where a loop is running."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def wait_terminal(system: System, job_ids: Iterable[str], timeout: float = 60) -> dict[str, str]:
    """Poll the read model until every job is terminal; the status of each."""
    pending = set(job_ids)
    statuses: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            response = system.job(job_id)
            if response.status_code == 200 and response.json()["status"] in TERMINAL:
                statuses[job_id] = response.json()["status"]
                pending.discard(job_id)
        if pending:
            time.sleep(0.2)
    assert not pending, f"{len(pending)} jobs never became terminal, e.g. {sorted(pending)[:5]}"
    return statuses


def verify(system: System, wait_s: float = 30, *, poisoned: Iterable[str] = ()) -> str:
    """``conveyor verify --wait``: read model == fold of the log, projector caught up, every
    job terminal, every history a valid path (invariants 1 to 4). Its report."""
    result = system.conveyor("verify", "--wait", str(wait_s), timeout=wait_s + 120)
    assert result.returncode == 0, f"verify failed:\n{result.stdout}\n{result.stderr}"
    # verify leaves parked events out; none may exist but on the jobs a test ``poisoned`` on
    # purpose (an event the services wrote that the projector had to park breaks invariant 4)
    parked = [
        line
        for line in result.stdout.splitlines()
        if line.startswith("parked") and not any(job_id in line for job_id in poisoned)
    ]
    assert not parked, "events were parked as dead letters:\n" + "\n".join(parked)
    return result.stdout


def history_failures(histories: dict[str, list[AnyEvent]]) -> dict[str, list[str]]:
    """Per job, what is wrong with its raw history: not in the log, or not a valid path
    through the transitions table (which includes a second ``job.completed``)."""
    failures: dict[str, list[str]] = {}
    for job_id, events in histories.items():
        if not events or events[0].name != "job.submitted":
            failures[job_id] = ["missing from the log"]
        elif problems := history_problems(events):
            failures[job_id] = problems
    return failures


def check_invariants(
    system: System, accepted: Iterable[str], timeout: float = 60
) -> dict[str, list[AnyEvent]]:
    """Every accepted job is in the log and terminal; no attempt completed twice; every
    history is a valid path; the read model equals the fold (SPEC §6, 1 to 5). The jobs' raw
    histories, read once from the log."""
    accepted = list(accepted)
    wait_terminal(system, accepted, timeout)
    histories = raw_histories(system.nats_url, accepted)
    failures = history_failures(histories)
    examples = list(failures.items())[:5]
    assert not failures, f"{len(failures)} jobs with bad histories, e.g. {examples}"
    verify(system)
    return histories


def raw_subject(job_id: str, data: bytes, priority: Priority = "regular") -> str:
    """Where raw bytes meant as an event of ``job_id`` go: the subject of the event type they
    decode to (a runnable one on ``priority``'s queue), or, for bytes that are no event, a
    subject of the job's that no event type has. The job named by the subject is ``job_id``,
    whatever the bytes say (an event of another job stays wrong_subject poison)."""
    try:
        event = decode_event(data)
    except (msgspec.DecodeError, RecursionError):
        return names.event_subject(job_id, "job.unreadable")
    return names.event_subject(job_id, event.name, priority if runnable(event) else None)

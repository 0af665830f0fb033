"""A clustered JetStream losing nodes under load (issue 12, "a real cluster, tested here").

Three nats-server processes on the loopback (routes between them, each its own file store,
``sync_interval: always``), every stream at 3 replicas (``CONVEYOR_REPLICAS=3``), and api,
notifier, projector and two workers given all three URLs (``NATS_URL`` comma-separated).
Short jobs are submitted steadily (noops, and sleeps of 0.5 s) while:

1. the leader of ``CONVEYOR_JOBS`` is SIGKILLed; the other two elect a new one;
2. the killed node is restarted and catches up (all three replicas current again), so that
   killing a second node leaves a quorum of two: without the restart, two nodes down would
   leave the stream without a quorum, an outage rather than a failover;
3. the new leader (the second node) is SIGKILLed;
4. it is restarted, and the stream is whole again.

Then: every acknowledged submission (a 201) is in the log and terminal, no job completed
twice (its events through the API, and its raw history in the log), ``conveyor verify``
passes, and the service processes of the start are still running: they failed over by
themselves. A submission answered 503, or not answered, during an election is allowed.

What a leader change costs is printed (``pytest -s``): the longest pause between
acknowledged submissions and between completions around each kill, and jobs/s before,
during and after (docs/performance.md, "A leader change in a 3-node cluster").
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from conveyor_events import names
from support.cluster import NatsCluster, poll
from support.invariants import check_invariants
from support.system import System
from support.traffic import Feed, Submitter

pytestmark = [pytest.mark.e2e, pytest.mark.long]

NOOP = {"type": "noop"}
SLEEP = {"type": "sleep", "payload": {"seconds": 0.5, "steps": 2}}
STEADY_S = 4.0
"""Traffic before the first kill, and after each recovery before the next step."""
ELECTION_S = 30.0
"""A new leader within this long of a kill (nats-server's election timeouts are seconds)."""


@dataclass
class Clustered:
    cluster: NatsCluster
    system: System


@pytest.fixture(scope="module")
def clustered(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clustered]:
    with NatsCluster(tmp_path_factory.mktemp("cluster")) as cluster:
        logs = tmp_path_factory.mktemp("cluster-logs")
        env = {"CONVEYOR_REPLICAS": "3"}
        with System(cluster.url, database_url, logs, workers=2, env=env) as system:
            yield Clustered(cluster, system)


@dataclass(frozen=True)
class Kill:
    node: str
    at: float
    """When it was SIGKILLed (``time.monotonic()``)."""
    elected: str
    elected_s: float
    """From the kill to the new leader's election (its ``leader_since``)."""
    resumed_at: float
    """When the first submission sent after the kill was acknowledged."""


def test_leader_killed_twice_loses_no_acknowledged_job(clustered: Clustered) -> None:
    cluster, system = clustered.cluster, clustered.system
    cluster.wait_healthy(names.STREAM)
    first = cluster.leader(names.STREAM)
    # the streams really are replicated on every node
    for stream in (names.STREAM, names.TIMERS_STREAM, names.WORKERS_STREAM):
        info = cluster.stream(stream)
        assert info is not None and len(info.replicas) == 2, (stream, info)
    procs = dict(system.procs)

    feed = Feed(system.ws_url)
    feed.start()
    assert feed.connected.wait(15)
    noops = Submitter(system.api_url, NOOP, interval=0.05)
    sleeps = Submitter(system.api_url, SLEEP, interval=0.25)
    noops.start()
    sleeps.start()
    started = time.monotonic()
    kills: list[Kill] = []
    try:
        steady(noops, started)
        kills.append(kill_and_restart(cluster, noops, first.leader or ""))
        second = cluster.leader(names.STREAM).leader or ""
        if second == first.leader:  # the restarted node leads again: kill another one
            second = next(n for n in cluster.nodes if n != first.leader)
        kills.append(kill_and_restart(cluster, noops, second))
    finally:
        noops.stop()
        sleeps.stop()
        feed.stop()
    ended = time.monotonic()

    accepted = [a.job_id for a in noops.accepted() + sleeps.accepted() if a.job_id]
    assert len(accepted) >= 100, f"only {len(accepted)} submissions were acknowledged"
    answers = noops.answers + sleeps.answers
    refused = [a for a in answers if a.status not in (200, 201, 202)]
    assert all(a.status in (0, 503, 504) for a in refused), {a.status for a in refused}

    # no acknowledged submission lost, every one terminal, no attempt completed twice, every
    # history a valid path, the read model equal to the fold of the log (conveyor verify)
    histories = check_invariants(system, accepted, timeout=60)
    completions = {j: sum(e["type"] == "job.completed" for e in system.events(j)) for j in accepted}
    twice = [j for j, n in completions.items() if n > 1]
    assert not twice, f"{len(twice)} jobs completed twice, e.g. {twice[:5]}"

    # the services failed over by themselves: the processes of the start, all still running,
    # and each did its work after the second kill
    assert system.procs == procs
    for name, proc in procs.items():
        assert proc.poll() is None, f"{name} exited with {proc.returncode}"
    last = kills[-1]
    assert any(a.started > last.at for a in noops.accepted()), "api accepted nothing after"
    assert feed.first_after(last.at, "job.completed") is not None, "notifier streamed nothing"

    offset = time.monotonic() - time.time()
    done = sorted(
        e.at.timestamp() + offset
        for events in histories.values()
        for e in events
        if e.name == "job.completed"
    )
    acks = sorted(a.started + a.elapsed for a in noops.accepted() + sleeps.accepted())
    report(kills, acks, done, started, ended, len(accepted), Counter(a.status for a in refused))
    if refused:
        waits = sorted(a.elapsed for a in refused)
        print(
            f"refused answers took {waits[len(waits) // 2]:.2f}s (median), {waits[-1]:.2f}s at most"
        )


# -- steps -----------------------------------------------------------------------------------


def steady(submitter: Submitter, since: float) -> None:
    """Until ``STEADY_S`` of traffic since ``since``, with a submission acknowledged in it."""
    poll(
        lambda: (
            time.monotonic() - since >= STEADY_S
            and submitter.first_accepted_after(since) is not None
        ),
        ELECTION_S + STEADY_S,
        "no submission was acknowledged",
    )


def kill_and_restart(cluster: NatsCluster, submitter: Submitter, node: str) -> Kill:
    """SIGKILL ``node``, wait for a new leader and for submissions to be acknowledged again,
    let traffic run, then restart the node, wait until its replica is current, and let
    traffic run again."""
    cluster.kill(node)
    at, wall = time.monotonic(), time.time()
    elected = cluster.leader(names.STREAM, ELECTION_S, other_than=node)
    assert elected.leader is not None and elected.leader_since is not None
    poll(lambda: submitter.first_accepted_after(at) is not None, ELECTION_S, "no ack after")
    resumed = submitter.first_accepted_after(at)
    assert resumed is not None
    resumed_at = resumed.started + resumed.elapsed
    steady(submitter, resumed_at)
    cluster.restart(node)
    cluster.wait_healthy(names.STREAM, ELECTION_S)
    steady(submitter, time.monotonic())
    elected_s = elected.leader_since.timestamp() - wall
    return Kill(node, at, elected.leader, elected_s, resumed_at)


# -- what it cost ----------------------------------------------------------------------------


def longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest time between consecutive ``times`` in [start, end] (its ends included)."""
    inside = [start] + [t for t in times if start <= t <= end] + [end]
    return max(b - a for a, b in itertools.pairwise(inside))


def rate(times: list[float], start: float, end: float) -> float:
    return sum(start <= t < end for t in times) / (end - start) if end > start else 0.0


def report(
    kills: list[Kill],
    acks: list[float],
    done: list[float],
    started: float,
    ended: float,
    accepted: int,
    refused: dict[int, int],
) -> None:
    statuses = ", ".join(f"{n} x {s or 'no answer'}" for s, n in sorted(refused.items()))
    print(f"\n{accepted} submissions acknowledged; refused or unanswered: {statuses or 'none'}")
    for n, kill in enumerate(kills, 1):
        before = (kill.at - STEADY_S, kill.at)
        during = (kill.at, kill.resumed_at)
        after = (kill.resumed_at, kill.resumed_at + STEADY_S)
        acked_gap = longest_gap(acks, before[0], after[1])
        done_gap = longest_gap(done, before[0], after[1])
        print(
            f"kill {n}: {kill.node} SIGKILLed, {kill.elected} elected after {kill.elected_s:.1f}s;"
            f" longest pause: acknowledged submissions {acked_gap:.1f}s, completions"
            f" {done_gap:.1f}s"
        )
        for label, (a, b) in (("before", before), ("during", during), ("after", after)):
            print(
                f"  {label:6} {b - a:5.1f}s: {rate(acks, a, b):5.1f} submitted/s, "
                f"{rate(done, a, b):5.1f} completed/s"
            )
    print(f"traffic ran {ended - started:.1f}s")

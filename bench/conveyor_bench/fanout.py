"""Fan-out: many websocket clients on one notifier (all on the firehose ``/ws``, like the
dashboard) while job events flow into the log; event → client delivery latency, and the
notifier's memory and CPU.

Only NATS and the notifier run. The events are real: ``job.submitted`` events appended
through the event store as atomic batches, one every 10 ms, each event's
``at`` stamped just before its batch is published (microsecond precision). The clients run in
two processes of their own (see :mod:`conveyor_bench.wsclients`): a few *probes* parse every
frame and record receive time minus ``at``, and check ``seq`` against what was published; the
rest are *sinks* that read every byte and count it, and must end with exactly the probes'
byte count.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
import nats

from conveyor_bench.harness import Cluster, Scale, Services, cpu_s, rss_mb
from conveyor_bench.stats import latencies, latency_runs, percentile, spread
from conveyor_bus import JetStreamEventStore
from conveyor_events import CommandHandler, SubmitJob

TICK_S = 0.01
"""One atomic batch of events every 10 ms."""
PROBES = 25
IN_FLIGHT = 100
"""Batches being published at once (a second's worth) before the publisher falls behind."""
ACK_WAIT_S = 60.0
"""How long the publisher waits for a batch's acknowledgement. It is the load, not the system
measured: a stalled disk on a shared machine (seen in CI: more than the store's 5 s) shows
in ``ack_ms`` instead of ending the run."""


def _probes(clients: int) -> int:
    return min(PROBES, max(1, clients // 4))


async def _publish(nats_url: str, events_per_s: int, seconds: float, run: int) -> dict[str, Any]:
    """Submit ``events_per_s`` jobs a second for ``seconds``: the seqs of their events."""
    nc = await nats.connect(nats_url, name="bench-fanout")
    store = CommandHandler(JetStreamEventStore(nc, publish_timeout=ACK_WAIT_S))
    per_tick = max(1, round(events_per_s * TICK_S))
    ticks = round(seconds / TICK_S)
    seqs: list[int] = []
    acked_at: dict[int, float] = {}
    at: dict[int, float] = {}
    acks_ms: list[float] = []
    gate = asyncio.Semaphore(IN_FLIGHT)
    late = 0

    async def batch(tick: int) -> None:
        async with gate:
            base = tick * per_tick
            cmds = [
                SubmitJob(
                    job_id=f"01F{run % 10}{base + n:022d}",
                    now=datetime.now(UTC),
                    actor="user:bench",
                    type="noop",
                    payload={"tick": tick, "n": n},
                )
                for n in range(per_tick)
            ]
            sent = time.perf_counter()
            outcomes = await store.submit(cmds)
            acks_ms.append((time.perf_counter() - sent) * 1000)
            acked = time.time()
            for cmd, outcome in zip(cmds, outcomes, strict=True):
                seq = outcome.events[0].seq
                seqs.append(seq)
                acked_at[seq] = acked
                at[seq] = cmd.now.timestamp()

    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        tasks = []
        for tick in range(ticks):
            await asyncio.sleep(max(0.0, began + tick * TICK_S - loop.time()))
            if gate.locked():
                late += 1
            tasks.append(asyncio.create_task(batch(tick)))
        await asyncio.gather(*tasks)
        elapsed = loop.time() - began
    finally:
        await nc.close()
    seqs.sort()
    return {
        "seqs": seqs,
        "acked_at": acked_at,
        "at": at,
        "events_per_s": len(seqs) / elapsed,
        "ack_ms": {"p50": percentile(acks_ms, 50), "p99": percentile(acks_ms, 99)},
        "late_ticks": late,
    }


@contextmanager
def _clients(url: str, sinks: int, probes: int, report: Path) -> Iterator[subprocess.Popen[str]]:
    args = [url, f"--report={report}", f"--sinks={sinks}", f"--probes={probes}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor_bench.wsclients", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _line(proc: subprocess.Popen[str], what: str) -> dict[str, Any]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"{what}: the client process exited ({proc.wait()})")
    answer: dict[str, Any] = json.loads(line)
    if "report" in answer:
        answer = json.loads(Path(answer["report"]).read_text())
    return answer


def _order(proc: subprocess.Popen[str], **order: Any) -> None:
    stdin: IO[str] | None = proc.stdin
    assert stdin is not None
    stdin.write(json.dumps(order) + "\n")
    stdin.flush()


def _wait_healthy(port: int, services: Services) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if services.procs["notifier"].poll() is not None:
            raise RuntimeError(f"the notifier exited:\n{services.log('notifier')}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError("the notifier did not become healthy")


def _slow_disconnects(port: int) -> float:
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in metrics.splitlines():
        if line.startswith("conveyor_ws_slow_disconnects_total "):
            return float(line.split()[1])
    raise RuntimeError("no conveyor_ws_slow_disconnects_total in /metrics")


class NatsOnly(Cluster):
    """The cluster without PostgreSQL: the notifier needs only NATS."""

    def __enter__(self) -> NatsOnly:
        try:
            self.nats.start()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        self.nats.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _after_ack(probes: list[dict[str, Any]], published: dict[str, Any]) -> list[float]:
    """Receive time minus the time the publisher had its batch's ack: the part of the
    latency that is not the durable append (negative when a client was faster than the
    publisher's ack)."""
    acked_at, at = published["acked_at"], published["at"]
    return [
        (at[seq] - acked_at[seq]) * 1000 + lat
        for p in probes
        for seq, lat in zip(p["seqs"], p["latencies_ms"], strict=True)
    ]


def one_run(cluster: Cluster, scale: Scale, run: int) -> dict[str, Any]:
    services = Services(cluster, workers=0)
    port = services.notifier_port
    probes = _probes(scale.fanout_clients)
    sinks = scale.fanout_clients - probes
    try:
        services.start(
            "notifier",
            "notifier",
            CONVEYOR_NOTIFIER_PORT=str(port),
            # every client is on this machine's one address: no cap per address, and room
            # for all of them
            CONVEYOR_MAX_CLIENTS_PER_ADDRESS="0",
            CONVEYOR_MAX_CLIENTS=str(scale.fanout_clients),
        )
        _wait_healthy(port, services)
        pid = services.procs["notifier"].pid
        idle_rss = rss_mb(pid)
        with (
            _clients(services.ws_url, 0, probes, cluster.root / "probes.json") as probing,
            _clients(services.ws_url, sinks, 0, cluster.root / "sinks.json") as sinking,
        ):
            connecting = time.monotonic()
            _line(probing, "probes")
            _line(sinking, "sinks")
            connect_s = time.monotonic() - connecting
            clients_before = cpu_s(probing.pid) + cpu_s(sinking.pid)
            cpu_before, began = cpu_s(pid), time.monotonic()
            published = asyncio.run(
                _publish(cluster.nats.url, scale.fanout_events_per_s, scale.fanout_seconds, run)
            )
            seqs = published["seqs"]
            _order(probing, last_seq=seqs[-1], bytes=0, timeout=30)
            probed = _line(probing, "probes")
            notifier_cpu_s, wall_s = cpu_s(pid) - cpu_before, time.monotonic() - began
            clients_cpu_s = cpu_s(probing.pid) + cpu_s(sinking.pid) - clients_before
            rss, peak = rss_mb(pid), rss_mb(pid, "VmHWM")
            complete = [p["bytes"] for p in probed["probes"] if p["seqs"] == seqs]
            expected_bytes = max(complete, default=-1)
            _order(sinking, last_seq=0, bytes=expected_bytes, timeout=30)
            sunk = _line(sinking, "sinks")
        slow = _slow_disconnects(port)
    finally:
        services.stop()
    samples = [x for p in probed["probes"] for x in p["latencies_ms"]]
    complete_probes = sum(p["seqs"] == seqs for p in probed["probes"])
    complete_sinks = sum(b == expected_bytes for b in sunk["sink_bytes"])
    return {
        "latency_ms": latencies(samples),
        "after_ack_ms": latencies(_after_ack(probed["probes"], published)),
        "events": len(seqs),
        "events_per_s": round(published["events_per_s"], 1),
        "publish_ack_ms": {k: round(v, 2) for k, v in published["ack_ms"].items()},
        "late_ticks": published["late_ticks"],
        "connect_s": round(connect_s, 2),
        "complete_clients": complete_probes + complete_sinks,
        "probes_complete": complete_probes,
        "sinks_complete": complete_sinks,
        "sink_bytes_min": min(sunk["sink_bytes"], default=0),
        "expected_bytes": expected_bytes,
        "lost_clients": sunk["sinks_lost"] + sum(p["lost"] for p in probed["probes"]),
        "bad_frames": sum(p["bad_frames"] for p in probed["probes"]),
        "slow_disconnects": slow,
        "notifier_rss_mb": rss,
        "notifier_idle_rss_mb": idle_rss,
        "notifier_peak_rss_mb": peak,
        "notifier_cpu_percent": round(100 * notifier_cpu_s / wall_s, 1),
        "clients_cpu_percent": round(100 * clients_cpu_s / wall_s, 1),
        "drain_s": probed["waited_s"],
    }


def run(scale: Scale) -> dict[str, Any]:
    with NatsOnly("fanout") as cluster:
        runs = [one_run(cluster, scale, n) for n in range(scale.repeats)]
    return {
        "clients": scale.fanout_clients,
        "probes": _probes(scale.fanout_clients),
        "events_per_s": scale.fanout_events_per_s,
        "seconds": scale.fanout_seconds,
        "latency_ms": latency_runs([r["latency_ms"] for r in runs]),
        "all_clients_got_every_event": all(
            r["complete_clients"] == scale.fanout_clients for r in runs
        ),
        "slow_disconnects": sum(r["slow_disconnects"] for r in runs),
        "notifier_rss_mb": spread([r["notifier_rss_mb"] for r in runs]),
        "notifier_peak_rss_mb": spread([r["notifier_peak_rss_mb"] for r in runs]),
        "notifier_cpu_percent": spread([r["notifier_cpu_percent"] for r in runs]),
        "runs": runs,
    }

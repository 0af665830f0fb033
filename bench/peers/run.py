"""Measures the peer systems (Celery, Dramatiq, Taskiq) on this machine, for comparison.

METHOD (TO BE WRITTEN)
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
        """CPU seconds used so far by this client, the worker's process group and the servers."""
        groups = {"worker": worker.process.pid, **self.server_pids}
        return {
            "client": time.process_time(),
            **{name: group_cpu_seconds(pid) for name, pid in groups.items()},
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
        "nats-server: one private instance, -js with a file store in a temp dir and default "
        "sync settings: it always runs without sync_interval: always.",
        "Throughput: from the first submit until a poller (every 0.1 s) sees all results in "
        "the peer's result store.",
        "Latency: handler start wall time (the job's result) minus the wall time just before "
        "submit; jobs submitted 20 ms apart, results read after the last submit.",
        "Client, broker, worker and result store share this machine's cores.",
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

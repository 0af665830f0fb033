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
import statistics
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
    hard_timeout,
    start_nats,
    start_redis,
    tail,
)
from peer import HERE, Infra, Peer

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


def summarize_throughput(jobs: int, seconds: list[float]) -> dict[str, Any]:
    rates = [round(jobs / s, 1) for s in seconds]
    return {
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "runs": rates,
    }


def latency_stats(latencies_ms: list[float]) -> dict[str, float]:
    """p50 and p99 interpolate between closest ranks (numpy's default); max is the largest."""
    cuts = statistics.quantiles(latencies_ms, n=100, method="inclusive")
    return {
        "p50": round(cuts[49], 2),
        "p99": round(cuts[98], 2),
        "max": round(max(latencies_ms), 2),
    }


def summarize_latency(runs: list[dict[str, float]]) -> dict[str, Any]:
    summary: dict[str, Any] = {
        key: round(statistics.median(run[key] for run in runs), 2) for key in ("p50", "p99", "max")
    }
    return {**summary, "runs": runs}


def scenario(peer: Peer, worker: Child, what: str, body: Callable[[], Any]) -> Any:
    """Runs one scenario under the hard time limit; a timeout names the worker's state."""
    try:
        with hard_timeout(SCENARIO_TIMEOUT_S, f"{peer.name} {what}"):
            return body()
    except ScenarioTimeout as e:
        state = "running" if worker.process.poll() is None else "exited"
        raise BenchError(f"{e} (worker {state}); worker log tail:\n{tail(worker.log)}") from e


def measure_peer(name: str, processes: Processes, infra: Infra, options: Options) -> dict[str, Any]:
    peer = load_peer(name)
    worker = processes.start(f"{name}-worker", peer.worker_argv(), infra.worker_env(), HERE)
    try:
        scenario(peer, worker, "worker start and warm-up", peer.warm_up)
        seconds = []
        for run in range(1, options.repeats + 1):
            scenario(peer, worker, f"reset before throughput run {run}", peer.reset)
            took = scenario(
                peer, worker, f"throughput run {run}", lambda: peer.throughput(options.jobs)
            )
            print(f"  {name} throughput run {run}: {options.jobs / took:.1f} jobs/s", flush=True)
            seconds.append(took)
        latency_runs = []
        for run in range(1, options.repeats + 1):
            scenario(peer, worker, f"reset before latency run {run}", peer.reset)
            latencies = scenario(
                peer,
                worker,
                f"latency run {run}",
                lambda: peer.latency(options.latency_jobs, LATENCY_GAP_S),
            )
            stats = latency_stats(latencies)
            print(f"  {name} latency run {run}: {stats}", flush=True)
            latency_runs.append(stats)
    finally:
        try:
            peer.close()
        finally:
            processes.stop(worker)
    return {
        "version": peer.version,
        "setup": peer.setup,
        "throughput_jobs_per_s": summarize_throughput(options.jobs, seconds),
        "latency_ms": summarize_latency(latency_runs),
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


def print_summary(report: dict[str, Any]) -> None:
    print(f"\npeers on {report['cpu_count']} cores; {report['jobs']} jobs per throughput run, ")
    print(f"{report['latency_jobs']} jobs per latency run, {report['repeats']} repeats")
    print(f"{'peer':<10}{'jobs/s median (min-max)':>28}{'latency ms p50 / p99 / max':>30}")
    for name, peer in report["peers"].items():
        rate, lat = peer["throughput_jobs_per_s"], peer["latency_ms"]
        rates = f"{rate['median']:.0f} ({rate['min']:.0f}-{rate['max']:.0f})"
        latency = f"{lat['p50']:.1f} / {lat['p99']:.1f} / {lat['max']:.1f}"
        print(f"{name:<10}{rates:>28}{latency:>30}")
    print(f"wall time {report['wall_time_s']:.0f} s")


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
        peers = {}
        for name in options.peers:
            print(f"{name}:", flush=True)
            peers[name] = measure_peer(name, processes, infra, options)
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

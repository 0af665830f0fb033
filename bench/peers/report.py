"""Summaries of the peers benchmark's runs: the JSON report's pieces and the printed table."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from peer import ThroughputRun


@dataclass(frozen=True)
class MeasuredRun:
    """One throughput run, with the CPU seconds each component used during it."""

    jobs: int
    timing: ThroughputRun
    cpu_s: dict[str, float]

    @property
    def jobs_per_s(self) -> float:
        return round(self.jobs / self.timing.total_s, 1)

    def detail(self) -> dict[str, Any]:
        return {
            "jobs_per_s": self.jobs_per_s,
            "submit_s": round(self.timing.submit_s, 2),
            "total_s": round(self.timing.total_s, 2),
            "cpu_s": {name: round(seconds, 2) for name, seconds in self.cpu_s.items()},
        }


def summarize_throughput(runs: list[MeasuredRun]) -> dict[str, Any]:
    rates = [run.jobs_per_s for run in runs]
    return {
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "runs": rates,
        "details": [run.detail() for run in runs],
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
    """The median over runs of each statistic, and the runs."""
    keys = ("p50", "p99", "max")
    summary: dict[str, Any] = {
        key: round(statistics.median(r[key] for r in runs), 2) for key in keys
    }
    return {**summary, "runs": runs}


def print_summary(report: dict[str, Any]) -> None:
    print(
        f"\n{report['jobs']} jobs per throughput run, {report['latency_jobs']} per latency run, "
        f"{report['repeats']} repeats, {report['cpu_count']} cores"
    )
    print(f"{'peer':<10}{'jobs/s median (min-max)':>26}{'latency ms p50 / p99 / max':>30}")
    for name, peer in report["peers"].items():
        rate, lat = peer["throughput_jobs_per_s"], peer["latency_ms"]
        rates = f"{rate['median']:.0f} ({rate['min']:.0f}-{rate['max']:.0f})"
        latency = f"{lat['p50']:.1f} / {lat['p99']:.1f} / {lat['max']:.1f}"
        print(f"{name:<10}{rates:>26}{latency:>30}")
    print(f"wall time {report['wall_time_s']:.0f} s")

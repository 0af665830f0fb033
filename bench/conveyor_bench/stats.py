"""Summaries of repeated measurements: medians with min/max, and latency percentiles."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0 to 100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def spread(runs: Sequence[float], digits: int = 1) -> dict[str, Any]:
    """A repeated figure: its median, min, max and every run."""
    return {
        "median": round(statistics.median(runs), digits),
        "min": round(min(runs), digits),
        "max": round(max(runs), digits),
        "runs": [round(r, digits) for r in runs],
    }


def latencies(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50, p99 and max of one run's latencies, in milliseconds."""
    return {
        "p50": round(percentile(samples_ms, 50), 2),
        "p99": round(percentile(samples_ms, 99), 2),
        "max": round(max(samples_ms), 2),
        "n": len(samples_ms),
    }


def latency_runs(runs: Sequence[dict[str, float]]) -> dict[str, Any]:
    """Latency over repeats: the median of each run's p50, p99 and max, and every run."""
    return {
        **{k: round(statistics.median(r[k] for r in runs), 2) for k in ("p50", "p99", "max")},
        "runs": list(runs),
    }

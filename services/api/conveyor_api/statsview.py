"""The parts of ``GET /api/v1/stats`` the projector keeps as it goes (conveyor_db.stats):
the oldest pending job's wait per priority, completions and failures per minute over the last
hour, and run-time percentiles per type, each read from a few small rows."""

from __future__ import annotations

from datetime import datetime, timedelta

from conveyor_api.schemas import MinuteOutcomes, RunTime
from conveyor_db import ReadModel
from conveyor_db.stats import WINDOW, minute_of, percentile

PRIORITIES = ("high", "regular")
MINUTES = int(WINDOW.total_seconds() // 60)


async def oldest_pending_age_s(reads: ReadModel, now: datetime) -> dict[str, float | None]:
    since = await reads.oldest_pending(PRIORITIES)
    ages: dict[str, float | None] = {}
    for p in PRIORITIES:
        waiting = since.get(p)
        ages[p] = None if waiting is None else round(max(0.0, (now - waiting).total_seconds()), 3)
    return ages


async def per_minute(reads: ReadModel, now: datetime) -> list[MinuteOutcomes]:
    """Every one of the last :data:`MINUTES` minutes, the current one last, zeros included."""
    first = minute_of(now) - timedelta(minutes=MINUTES - 1)
    minutes = [first + timedelta(minutes=i) for i in range(MINUTES)]
    counts: dict[tuple[datetime, str], int] = {}
    for minute, outcome, n in await reads.outcomes_since(first):
        counts[(minute, outcome)] = counts.get((minute, outcome), 0) + n
    return [
        MinuteOutcomes(
            minute=m, completed=counts.get((m, "completed"), 0), failed=counts.get((m, "failed"), 0)
        )
        for m in minutes
    ]


async def run_times(reads: ReadModel, now: datetime) -> dict[str, RunTime]:
    first = minute_of(now) - timedelta(minutes=MINUTES - 1)
    out: dict[str, RunTime] = {}
    for job_type, histogram in sorted((await reads.run_times_since(first)).items()):
        p50, p95 = percentile(histogram, 0.5), percentile(histogram, 0.95)
        if p50 is not None and p95 is not None:
            out[job_type] = RunTime(count=sum(histogram.values()), p50_s=p50, p95_s=p95)
    return out

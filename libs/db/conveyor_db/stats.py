"""Statistics the projector keeps as it goes (migrations/007_stats.sql), so that
``GET /api/v1/stats`` reads a few small rows instead of scanning ``jobs``:

- ``job_counts``: jobs by status and priority, moved by each status change;
- ``job_outcomes``: jobs completed and failed (for good: no retry left) per minute;
- ``job_run_times``: per type and minute, a histogram of completed jobs' run times
  (``finished_at - started_at`` of the attempt that completed) in fixed buckets, four per
  doubling, from which percentiles are read to within 19 %.

Minutes older than :data:`KEEP` are not written (a replay of an old log) and are deleted by
the projector's maintenance. The oldest pending job per priority is read from the partial
index ``jobs_pending_since`` (one index probe per priority), so it needs no table.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from conveyor_events import JobState

KEEP = timedelta(hours=24)
"""How far back per-minute rows are kept."""
WINDOW = timedelta(hours=1)
"""What ``GET /stats`` reports: the last hour."""
PER_DOUBLING = 4
"""Buckets per doubling of the run time: bucket k holds run times in (2^((k-1)/4), 2^(k/4)]
milliseconds, bucket 0 up to 1 ms."""
LAST_BUCKET = 160
"""2^40 ms, 35 years: every run time fits below."""
TERMINAL_OUTCOMES = ("completed", "failed")


def bucket_of(seconds: float) -> int:
    ms = seconds * 1000
    if ms <= 1:
        return 0
    return min(LAST_BUCKET, math.ceil(PER_DOUBLING * math.log2(ms) - 1e-9))


def bucket_upper_s(bucket: int) -> float:
    """The longest run time of ``bucket``, in seconds."""
    return float(2 ** (bucket / PER_DOUBLING) / 1000)


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


@dataclass
class StatsDelta:
    """What one batch of events changes in the statistics."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(status, priority): change in the number of jobs."""
    outcomes: Counter[tuple[datetime, str]] = field(default_factory=Counter)
    """(minute, completed|failed): jobs that ended so in that minute."""
    run_times: Counter[tuple[str, datetime, int]] = field(default_factory=Counter)
    """(type, minute, bucket): completed jobs of that type and run time."""

    def track(self, before: JobState | None, after: JobState) -> None:
        """Account for one event that took a job from ``before`` (None: unknown here, as a
        submission, or a row the counts do not hold) to ``after``."""
        old = None if before is None or before.deleted else (before.status, before.priority)
        new = None if after.deleted else (after.status, after.priority)
        if old != new:
            if old is not None:
                self.counts[old] -= 1
            if new is not None:
                self.counts[new] += 1
        ended = after.status in TERMINAL_OUTCOMES and (
            before is None or before.status != after.status
        )
        if not ended or after.deleted or after.finished_at is None:
            return
        minute = minute_of(after.finished_at)
        self.outcomes[(minute, after.status)] += 1
        if after.status == "completed" and after.started_at is not None:
            run = (after.finished_at - after.started_at).total_seconds()
            self.run_times[(after.type, minute, bucket_of(max(0.0, run)))] += 1


_SAVE = """
WITH counts AS (
    INSERT INTO job_counts (status, priority, n)
    SELECT * FROM unnest($1::text[], $2::text[], $3::int8[])
    ON CONFLICT (status, priority) DO UPDATE SET n = job_counts.n + EXCLUDED.n
), outcomes AS (
    INSERT INTO job_outcomes (minute, outcome, n)
    SELECT * FROM unnest($4::timestamptz[], $5::text[], $6::int8[])
    ON CONFLICT (minute, outcome) DO UPDATE SET n = job_outcomes.n + EXCLUDED.n
)
INSERT INTO job_run_times (type, minute, bucket, n)
SELECT * FROM unnest($7::text[], $8::timestamptz[], $9::int4[], $10::int8[])
ON CONFLICT (type, minute, bucket) DO UPDATE SET n = job_run_times.n + EXCLUDED.n
"""


async def save_stats(conn: asyncpg.Connection, delta: StatsDelta, since: datetime) -> None:
    """Add ``delta`` (caller's transaction: the projection's); minutes before ``since`` are
    left out."""
    counts = [(k, n) for k, n in delta.counts.items() if n]
    outcomes = [(k, n) for k, n in delta.outcomes.items() if k[0] >= since]
    runs = [(k, n) for k, n in delta.run_times.items() if k[1] >= since]
    if not (counts or outcomes or runs):
        return
    await conn.execute(
        _SAVE,
        [k[0] for k, _ in counts],
        [k[1] for k, _ in counts],
        [n for _, n in counts],
        [k[0] for k, _ in outcomes],
        [k[1] for k, _ in outcomes],
        [n for _, n in outcomes],
        [k[0] for k, _ in runs],
        [k[1] for k, _ in runs],
        [k[2] for k, _ in runs],
        [n for _, n in runs],
    )


async def prune_stats(conn: asyncpg.Connection, before: datetime) -> None:
    """Delete the per-minute rows older than ``before``."""
    await conn.execute("DELETE FROM job_outcomes WHERE minute < $1", before)
    await conn.execute("DELETE FROM job_run_times WHERE minute < $1", before)


def percentile(histogram: dict[int, int], p: float) -> float | None:
    """The ``p`` percentile (0..1) of a bucket histogram, as its bucket's upper bound."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(p * total))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket_upper_s(bucket)
    raise AssertionError("unreachable: the ranks add up to the total")


@dataclass(frozen=True, slots=True)
class RunTimes:
    count: int
    p50_s: float
    p95_s: float


STATS_TABLES = ("job_counts", "job_outcomes", "job_run_times")
"""Emptied with the rows by ``reset`` (``conveyor replay --in-place``)."""

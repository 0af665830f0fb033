"""The job list's query: every filter of ``GET /api/v1/jobs`` as SQL that an index answers
(migrations/006_search_and_filters.sql; the plans are in docs/performance.md)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

SEARCH_TEXT = "(payload::text || ' ' || coalesce(error::text, ''))"
"""What ``q`` searches besides the id: the expression of the trigram index ``jobs_search_trgm``,
which the planner matches only when the query spells it the same way. How many rows a text
matches the planner estimates from that expression's statistics, kept at 1,000 sampled texts
(migrations/009_search_statistics.sql): with the default 100, a rare text one sampled payload
happened to hold looked common enough to read the whole table newest first."""

ID_CLOCK_MARGIN = timedelta(minutes=5)
"""A job's id carries the millisecond its submission was stamped (a scheduled job's: its tick),
so every job created, or finished, before T has an id below the first id of T plus this
margin, which covers the clocks of the api, the scheduler and the workers disagreeing."""

_TRIGRAM = re.compile(r"[^\W_]{3}")
"""pg_trgm takes its trigrams from runs of letters and digits: a pattern without such a run of
three gives the index nothing to look up (it would read all of it)."""

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@dataclass(frozen=True, slots=True)
class JobFilter:
    statuses: Sequence[str] = ()
    priority: str | None = None
    type: str | None = None
    q: str | None = None
    worker: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    finished_after: datetime | None = None
    finished_before: datetime | None = None


def like_escaped(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern: ``%`` and ``_`` match only themselves
    (backslash is LIKE's default escape character)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def searches_text(q: str) -> bool:
    """Whether ``q`` is also looked for inside payloads and errors: when it holds a run of
    three letters or digits. A shorter ``q`` matches id prefixes only."""
    return _TRIGRAM.search(q) is not None


def first_id_at(moment: datetime) -> str:
    """The smallest job id of the millisecond ``moment`` (a ULID with zero random bits)."""
    value = int(moment.timestamp() * 1000) << 80
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in range(25, -1, -1))


def _id_bound(flt: JobFilter) -> str | None:
    """An upper bound on the ids of the jobs created or finished before the filter's ends
    (None: no such end, or one past what an id can carry)."""
    ends = [t for t in (flt.created_before, flt.finished_before) if t is not None]
    if not ends:
        return None
    try:
        end = min(ends) + ID_CLOCK_MARGIN
    except OverflowError:
        return None
    if end.timestamp() < 0 or end.timestamp() >= 2**48 / 1000:
        return None if end.timestamp() >= 0 else first_id_at(datetime.fromtimestamp(0, UTC))
    return first_id_at(end)


def list_query(flt: JobFilter, limit: int, cursor: str | None) -> tuple[str, list[object]]:
    """SQL and arguments of one page: ``limit + 1`` rows newest first (the extra one says
    whether there is a next page), columns as ``select_columns``."""
    where: list[str] = []
    args: list[object] = []

    def arg(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    if flt.statuses:
        where.append(f"status = ANY({arg(list(flt.statuses))}::text[])")
    if flt.priority:
        where.append(f"priority = {arg(flt.priority)}")
    if flt.type:
        where.append(f"type = {arg(flt.type)}")
    if flt.worker:
        where.append(f"worker_id = {arg(flt.worker)}")
    if flt.q:
        prefix = f"id LIKE {arg(like_escaped(flt.q) + '%')}"
        if searches_text(flt.q):
            text = f"{SEARCH_TEXT} ILIKE {arg('%' + like_escaped(flt.q) + '%')}"
            where.append(f"({prefix} OR {text})")
        else:
            where.append(prefix)
    if flt.created_after:
        where.append(f"created_at >= {arg(flt.created_after)}")
    if flt.created_before:
        where.append(f"created_at < {arg(flt.created_before)}")
    if flt.finished_after:
        where.append(f"finished_at >= {arg(flt.finished_after)}")
    if flt.finished_before:
        where.append(f"finished_at < {arg(flt.finished_before)}")
    bound = _id_bound(flt)
    if bound is not None:
        where.append(f"id < {arg(bound)}")
    if cursor:
        where.append(f"id < {arg(cursor)}")
    sql = "FROM jobs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY id DESC LIMIT {arg(limit + 1)}"
    return sql, args

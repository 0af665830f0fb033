"""Cron expressions as nats-server's message schedules read them, and their next tick.

The server fires the ticks; the API only checks an expression before handing it over and
says when the next tick is due (``next_run_at``). So this module accepts exactly what the
pinned nats-server 2.15.1 accepts and computes what it fires (its parser is robfig/cron's,
``server/cron.go``):

- six fields, seconds first (``sec min hour dom month dow``); five fields (minute first, the
  classic crontab) are taken as six with second 0; ``@yearly`` / ``@annually``,
  ``@monthly``, ``@weekly``, ``@daily`` / ``@midnight``, ``@hourly`` as their six fields;
- each field a comma list of ``*``, ``?``, ``N``, ``N-M``, each with an optional ``/step``
  (``N/step``: from N to the field's maximum); month names ``jan``…``dec`` and weekday names
  ``sun``…``sat`` in any case; weekdays 0-6, Sunday 0 (no 7, ``L``, ``W`` or ``#``);
- when both day fields are restricted, a day matches either (crontab's rule); a field that
  is ``*`` or ``?`` (without a step above 1) does not restrict;
- times are wall-clock times of the schedule's time zone: one that a DST change skips never
  fires that day, one that a DST change repeats fires at each of its instants;
- an expression that matches nothing within five years (``0 0 0 30 2 *``) is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from conveyor_events import InvalidPayload

MAX_YEARS = 5
"""How far ahead a tick is looked for (the server refuses a pattern without one in five)."""

_MACROS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_FIELDS = (
    _Field("second", 0, 59, {}),
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day of month", 1, 31, {}),
    _Field("month", 1, 12, {n: i for i, n in enumerate(_MONTHS, 1)}),
    _Field("day of week", 0, 6, {n: i for i, n in enumerate(_WEEKDAYS)}),
)
_RANGE = re.compile(r"(?:(\*|\?)|([0-9a-z]+)(?:-([0-9a-z]+))?)(?:/([0-9]+))?")


class InvalidCron(InvalidPayload):
    """Not a cron expression the scheduler accepts."""

    def __init__(self, message: str, field: str = "cron") -> None:
        super().__init__(f"{field}: {message}", field=field)


@dataclass(frozen=True)
class Cron:
    """A parsed expression: what the server is given, and the set of each field."""

    text: str
    """As written (five or six fields, or a macro)."""
    server: str
    """The six fields handed to nats-server."""
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 is Sunday."""
    any_day: bool
    """Day of month or day of week is unrestricted: a day must match both (else either)."""

    def day_matches(self, day: date) -> bool:
        dom = day.day in self.days
        dow = day.isoweekday() % 7 in self.weekdays
        return (dom and dow) if self.any_day else (dom or dow)

    def after(self, moment: datetime, zone: ZoneInfo) -> datetime | None:
        """The first tick strictly after ``moment``, in UTC; None within ``MAX_YEARS``."""
        moment = moment.astimezone(UTC)
        floor, shift = _wall_floor(moment, zone)
        best: datetime | None = None
        until: datetime | None = None
        """Where the scan can stop: a wall time past the best tick's own plus the shift (in
        a repeated hour, a later wall time may be an earlier instant)."""
        for day in self._days(floor.date()):
            for hour in self.hours:
                if datetime(day.year, day.month, day.day, hour, 59, 59) < floor:
                    continue
                for minute in self.minutes:
                    if datetime(day.year, day.month, day.day, hour, minute, 59) < floor:
                        continue
                    for second in self.seconds:
                        wall = datetime(day.year, day.month, day.day, hour, minute, second)
                        if wall < floor:
                            continue
                        if until is not None and wall > until:
                            return best
                        for instant in _instants(wall, zone):
                            if instant > moment and (best is None or instant < best):
                                best = instant
                                until = wall + shift
        return best

    def _days(self, first: date) -> Iterator[date]:
        last = first + timedelta(days=366 * MAX_YEARS)
        day = first
        while day <= last:
            if day.month not in self.months:
                day = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
                continue
            if self.day_matches(day):
                yield day
            day += timedelta(days=1)


def _wall_floor(moment: datetime, zone: ZoneInfo) -> tuple[datetime, timedelta]:
    """A wall-clock time of ``zone`` before which every wall time is an instant before
    ``moment``: the moment's own, less the largest change of offset within a day of it (a
    DST change moves the clocks back by that much); and that change."""
    local = moment.astimezone(zone)
    offset = local.utcoffset() or timedelta()
    shifts = [
        abs(((moment + d).astimezone(zone).utcoffset() or timedelta()) - offset)
        for d in (timedelta(days=-1), timedelta(days=1))
    ]
    return local.replace(tzinfo=None, microsecond=0) - max(shifts), max(shifts)


def _instants(wall: datetime, zone: ZoneInfo) -> list[datetime]:
    """The UTC instants at which the clocks of ``zone`` show ``wall``: none in a gap (spring
    forward), two in an overlap (fall back), else one."""
    out = []
    for fold in (0, 1):
        local = wall.replace(tzinfo=zone, fold=fold)
        instant = local.astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == wall and instant not in out:
            out.append(instant)
    return sorted(out)


def parse(text: str) -> Cron:
    """The expression, checked; raises ``InvalidCron`` naming the field that is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidCron("empty; e.g. '0 3 * * *' (03:00 every day) or '*/10 * * * * *'")
    written = " ".join(text.split())
    expanded = _MACROS.get(written.lower(), written)
    if expanded.startswith("@"):
        raise InvalidCron(
            f"{written!r}: unknown shorthand; allowed: {', '.join(_MACROS)} (for an interval "
            "write it as a cron, e.g. '*/30 * * * * *' for every 30 seconds)"
        )
    fields = expanded.split(" ")
    if len(fields) == 5:
        fields = ["0", *fields]
    elif len(fields) != 6:
        raise InvalidCron(
            f"{written!r} has {len(fields)} fields; give 5 (minute hour day-of-month month "
            "day-of-week) or 6 (second first)"
        )
    parts = [_field(f, spec) for f, spec in zip(fields, _FIELDS, strict=True)]
    sets = [values for values, _ in parts]
    stars = [star for _, star in parts]
    cron = Cron(
        text=written,
        server=" ".join(fields),
        seconds=tuple(sorted(sets[0])),
        minutes=tuple(sorted(sets[1])),
        hours=tuple(sorted(sets[2])),
        days=frozenset(sets[3]),
        months=frozenset(sets[4]),
        weekdays=frozenset(sets[5]),
        any_day=stars[3] or stars[5],
    )
    if cron.after(datetime.now(UTC), ZoneInfo("UTC")) is None:
        raise InvalidCron(f"{written!r} matches no day within {MAX_YEARS} years")
    return cron


def _field(text: str, spec: _Field) -> tuple[set[int], bool]:
    """The values of one field, and whether it leaves the field unrestricted."""
    values: set[int] = set()
    star = False
    for item in text.lower().split(","):
        match = _RANGE.fullmatch(item)
        if match is None:
            raise InvalidCron(f"{spec.name} field {text!r}: cannot read {item!r}")
        any_, low_text, high_text, step_text = match.groups()
        step = int(step_text) if step_text is not None else 1
        if step == 0:
            raise InvalidCron(f"{spec.name} field {text!r}: a step must be 1 or more")
        if any_ is not None:
            low, high = spec.low, spec.high
            star = star or step == 1
        else:
            low = _value(low_text, spec, text)
            high = _value(high_text, spec, text) if high_text is not None else low
            if high_text is None and step_text is not None:
                high = spec.high  # N/step: from N to the maximum
            if low > high:
                raise InvalidCron(f"{spec.name} field {text!r}: {low} is after {high}")
        values.update(range(low, high + 1, step))
    return values, star


def _value(token: str, spec: _Field, text: str) -> int:
    if token in spec.names:
        return spec.names[token]
    if not token.isdigit():
        allowed = f" or {_MONTHS[0]}-{_MONTHS[-1]}" if spec.name == "month" else ""
        allowed = f" or {_WEEKDAYS[0]}-{_WEEKDAYS[-1]}" if spec.names and not allowed else allowed
        raise InvalidCron(
            f"{spec.name} field {text!r}: {token!r} is not a number{allowed} "
            f"({spec.low}-{spec.high})"
        )
    value = int(token)
    if not spec.low <= value <= spec.high:
        raise InvalidCron(
            f"{spec.name} field {text!r}: {value} is out of range ({spec.low}-{spec.high})"
        )
    return value


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Paris``, ``UTC``); raises ``InvalidCron`` on
    ``timezone`` for anything else (an abbreviation like ``CET`` is not a zone of its
    own, and ``Local`` would be whatever the server's machine is set to)."""
    if not isinstance(name, str) or not name or len(name) > 64 or name.lower() == "local":
        raise InvalidCron(f"{name!r} is not an IANA time zone, e.g. Europe/Paris", "timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:
        raise InvalidCron(
            f"{name!r} is not an IANA time zone, e.g. Europe/Paris or UTC", "timezone"
        ) from e

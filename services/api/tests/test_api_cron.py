"""Cron expressions as nats-server reads them (conveyor_api.cron): what is accepted, what is
refused with the field named, and the next tick, also across DST changes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from conveyor_api.cron import InvalidCron, parse, zone

pytestmark = pytest.mark.unit

UTC_ZONE = ZoneInfo("UTC")
PARIS = ZoneInfo("Europe/Paris")


def ticks(text: str, start: datetime, n: int, tz: ZoneInfo = UTC_ZONE) -> list[datetime]:
    cron = parse(text)
    out, moment = [], start
    for _ in range(n):
        nxt = cron.after(moment, tz)
        assert nxt is not None
        out.append(nxt)
        moment = nxt
    return out


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "server"),
    [
        ("0 3 * * *", "0 0 3 * * *"),  # five fields: minute first, second 0
        ("*/10 * * * * *", "*/10 * * * * *"),
        ("  0   3 * *  * ", "0 0 3 * * *"),
        ("@daily", "0 0 0 * * *"),
        ("@HOURLY", "0 0 * * * *"),
        ("@weekly", "0 0 0 * * 0"),
        ("0 9 * JAN-mar Mon-FRI", "0 0 9 * JAN-mar Mon-FRI"),
        ("? * * * * ?", "? * * * * ?"),
    ],
)
def test_accepted_expressions_and_what_the_server_is_given(text: str, server: str) -> None:
    assert parse(text).server == server


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("* * * *", "has 4 fields"),
        ("* * * * * * *", "has 7 fields"),
        ("60 * * * *", "minute field '60': 60 is out of range (0-59)"),
        ("* 24 * * *", "hour field"),
        ("* * 0 * *", "day of month field '0'"),
        ("* * * 13 *", "month field '13'"),
        ("* * * * 7", "day of week field '7': 7 is out of range (0-6)"),
        ("* * * * * 7", "day of week field '7'"),
        ("a * * * *", "minute field 'a': 'a' is not a number"),
        ("* * * foo *", "'foo' is not a number or jan-dec"),
        ("* * * * sunday", "'sunday' is not a number or sun-sat"),
        ("*/0 * * * *", "a step must be 1 or more"),
        ("10-5 * * * *", "10 is after 5"),
        ("1,,2 * * * *", "cannot read ''"),
        ("0 0 L * *", "day of month field 'L'"),
        ("0 0 * * 1#2", "cannot read '1#2'"),
        ("0 0 31 2 *", "matches no day within 5 years"),
        ("@every 1s", "unknown shorthand"),
        ("@reboot", "unknown shorthand"),
    ],
)
def test_refused_expressions_name_the_field(text: str, says: str) -> None:
    with pytest.raises(InvalidCron) as refused:
        parse(text)
    assert refused.value.field == "cron"
    assert str(refused.value).startswith("cron: ")
    assert says in str(refused.value)


@pytest.mark.parametrize(
    "name", ["", "Local", "local", "Mars/Olympus", "../../etc/passwd", "x" * 65]
)
def test_a_time_zone_must_be_an_iana_zone(name: str) -> None:
    with pytest.raises(InvalidCron) as refused:
        zone(name)
    assert refused.value.field == "timezone"
    assert str(refused.value).startswith("timezone: ")


def test_iana_zones_are_accepted() -> None:
    assert zone("Europe/Paris") == PARIS
    assert zone("UTC") == UTC_ZONE
    assert zone("America/New_York").key == "America/New_York"


def test_every_second_ticks_on_each_second_after_the_moment() -> None:
    got = ticks("* * * * * *", at(2026, 12, 7, 9, 0, 0) + timedelta(microseconds=400_000), 3)
    assert got == [at(2026, 12, 7, 9, 0, 1), at(2026, 12, 7, 9, 0, 2), at(2026, 12, 7, 9, 0, 3)]


def test_the_next_tick_is_strictly_after_the_moment() -> None:
    assert ticks("*/10 * * * * *", at(2026, 12, 7, 9, 0, 10), 1) == [at(2026, 12, 7, 9, 0, 20)]


def test_five_fields_tick_at_second_zero_in_the_time_zone() -> None:
    # 03:00 in Paris in December is 02:00 UTC; in July 01:00 UTC
    assert ticks("0 3 * * *", at(2026, 12, 7, 12), 2, PARIS) == [
        at(2026, 12, 8, 2),
        at(2026, 12, 9, 2),
    ]
    assert ticks("0 3 * * *", at(2026, 7, 1, 12), 1, PARIS) == [at(2026, 7, 2, 1)]


def test_ranges_steps_lists_and_names() -> None:
    got = ticks("0 */20 9-10 * * mon,wed", at(2026, 12, 7, 0), 7)  # Monday 7 December
    hours = [(t.day, t.hour, t.minute) for t in got]
    assert hours == [(7, 9, 0), (7, 9, 20), (7, 9, 40), (7, 10, 0), (7, 10, 20), (7, 10, 40),
                     (9, 9, 0)]  # fmt: skip


def test_n_slash_step_runs_from_n_to_the_maximum() -> None:
    got = ticks("5/20 * * * *", at(2026, 12, 7, 9, 0), 4)
    assert [t.minute for t in got] == [5, 25, 45, 5]


def test_both_day_fields_restricted_match_either_day() -> None:
    # the 1st of the month, or any Friday (crontab's rule, and the server's)
    got = ticks("0 0 1 * fri", at(2026, 12, 1, 12), 3)
    assert [t.date().isoformat() for t in got] == ["2026-12-04", "2026-12-11", "2026-12-18"]
    got = ticks("0 0 1 * fri", at(2026, 12, 25, 12), 2)
    assert [t.date().isoformat() for t in got] == ["2027-01-01", "2027-01-08"]


def test_a_star_day_field_leaves_the_other_to_decide() -> None:
    got = ticks("0 0 * * fri", at(2026, 12, 1, 12), 2)
    assert [t.date().isoformat() for t in got] == ["2026-12-04", "2026-12-11"]
    got = ticks("0 0 13 * ?", at(2026, 12, 1, 12), 2)
    assert [t.date().isoformat() for t in got] == ["2026-12-13", "2027-01-13"]


def test_february_29_waits_for_a_leap_year() -> None:
    assert ticks("0 0 29 2 *", at(2026, 3, 1), 1) == [at(2028, 2, 29)]


def test_a_time_that_spring_forward_skips_does_not_tick_that_day() -> None:
    # 29 March 2026, Paris: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day
    got = ticks("30 2 * * *", at(2026, 3, 28, 12), 2, PARIS)
    assert [t.astimezone(PARIS).isoformat() for t in got] == [
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_a_time_that_fall_back_repeats_ticks_at_both_instants() -> None:
    # 25 October 2026, Paris: 03:00 CEST becomes 02:00 CET; 02:30 happens twice
    got = ticks("30 2 * * *", at(2026, 10, 24, 12), 3, PARIS)
    assert [t.astimezone(PARIS).isoformat() for t in got] == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-26T02:30:00+01:00",
    ]


def test_ticks_across_fall_back_are_in_order_with_none_left_out() -> None:
    got = ticks("0 * * * * *", at(2026, 10, 24, 23, 30), 240, PARIS)  # 01:30 CEST on
    assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(got))


def test_hourly_across_spring_forward_skips_the_missing_hour() -> None:
    got = ticks("@hourly", at(2026, 3, 28, 23, 30), 4, PARIS)  # 00:30 CET on the 29th
    assert [t.astimezone(PARIS).strftime("%H:%M%z") for t in got] == [
        "01:00+0100",
        "03:00+0200",
        "04:00+0200",
        "05:00+0200",
    ]

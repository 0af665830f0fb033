"""What nats-server's cron does when the clocks change, checked against a real server with
two made-up time zones whose DST changes happen a minute from now (issue 11).

Each zone is written with ``zic`` into a directory that nats-server reads through
``ZONEINFO`` (Go's ``time.LoadLocation`` looks there first) and Python through
``ZoneInfo.from_file``. Like real ones, the changes happen on a whole minute and move the
clocks by an hour: ``Test/Spring`` from 02:00 to 03:00, ``Test/Fall`` from 03:00 back to
02:00. Facts:

- a wall time that spring-forward skips (02:00:05) does not fire that day;
- the first wall time after the jump (03:00:05) fires on time;
- a wall time that fall-back repeats fires at both of its instants: 02:59:55 fires first
  at the earlier one and names the later one as its next tick; 02:00:05, whose earlier
  instant had passed when the schedule was made, fires at the later one;
- and for each, the API's next tick (``conveyor_api.cron``) is the server's.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import nats
import pytest
from nats.aio.client import Client

from conveyor_api import cron
from conveyor_bus.schedules import parse_time
from conveyor_cli.dev.embedded import NatsServer
from support.jetstream import api, publish

pytestmark = [
    pytest.mark.integration,
    pytest.mark.long,
    pytest.mark.timeout(150),
    pytest.mark.skipif(shutil.which("zic") is None, reason="needs zic (Debian's libc-bin)"),
]

SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)
STREAM = "DST"


def _offset_to(wall_hour: int, moment: datetime) -> timedelta:
    """The UTC offset (whole minutes, within ±12 h) at which ``moment`` shows
    ``wall_hour``:00:00."""
    clock = timedelta(hours=moment.hour, minutes=moment.minute)
    return (timedelta(hours=wall_hour) - clock + 12 * HOUR) % timedelta(days=1) - 12 * HOUR


def _zic(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign, minutes = ("-" if minutes < 0 else ""), abs(minutes)
    return f"{sign}{minutes // 60}:{minutes % 60:02d}"


@pytest.fixture
def change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[datetime]:
    """The instant of both zones' change (a whole minute, at least 15 s from now); the zones
    are in ``tmp_path/zoneinfo``, named to nats-server started after this."""
    at = (datetime.now(UTC) + 75 * SECOND).replace(second=0, microsecond=0)
    until = at.strftime("%Y %b %d %H:%M:%S") + "u"
    spring, fall = _offset_to(2, at), _offset_to(3, at)
    source = tmp_path / "zones.zi"
    source.write_text(
        f"Zone Test/Spring {_zic(spring)} - TSW {until}\n\t{_zic(spring + HOUR)} - TSS\n"
        f"Zone Test/Fall {_zic(fall)} - TFS {until}\n\t{_zic(fall - HOUR)} - TFW\n"
    )
    subprocess.run(["zic", "-d", str(tmp_path / "zoneinfo"), str(source)], check=True)
    monkeypatch.setenv("ZONEINFO", str(tmp_path / "zoneinfo"))
    yield at


def zone(tmp_path: Path, name: str) -> ZoneInfo:
    with (tmp_path / "zoneinfo" / name).open("rb") as f:
        return ZoneInfo.from_file(f, key=name)


async def test_ticks_across_spring_forward_and_fall_back(tmp_path: Path, change: datetime) -> None:
    spring, fall = zone(tmp_path, "Test/Spring"), zone(tmp_path, "Test/Fall")
    assert (change - SECOND).astimezone(spring).strftime("%H:%M:%S") == "01:59:59"
    assert change.astimezone(spring).strftime("%H:%M:%S") == "03:00:00"
    assert (change - SECOND).astimezone(fall).strftime("%H:%M:%S") == "02:59:59"
    assert change.astimezone(fall).strftime("%H:%M:%S") == "02:00:00"
    await _until(change - 12 * SECOND)  # 02:59:55 in Fall is still ahead

    server = NatsServer(tmp_path / "nats").start()  # reads ZONEINFO
    try:
        nc = await nats.connect(server.url)
        created = await api(
            nc,
            f"$JS.API.STREAM.CREATE.{STREAM}",
            {"name": STREAM, "subjects": ["d.>"], "storage": "file", "allow_msg_schedules": True},
        )
        assert "error" not in created, created
        plan = {
            "skipped": ("Test/Spring", spring, "5 0 2 * * *"),
            "after": ("Test/Spring", spring, "5 0 3 * * *"),
            "first": ("Test/Fall", fall, "55 59 2 * * *"),
            "second": ("Test/Fall", fall, "5 0 2 * * *"),
        }
        ours = {}
        for name, (tz_name, tz, text) in plan.items():
            ours[name] = cron.parse(text).after(datetime.now(UTC), tz)
            headers = {
                "Nats-Schedule": text,
                "Nats-Schedule-Target": f"d.tick.{name}",
                "Nats-Schedule-Time-Zone": tz_name,
            }
            ack = await publish(nc, f"d.sched.{name}", b"", headers)
            assert "error" not in ack, ack
        await _until(change + 7 * SECOND)
        fired = {name: await _ticks(nc, f"d.tick.{name}") for name in plan}
        await nc.close()
    finally:
        server.stop()

    assert fired["skipped"] == []  # 02:00:05 does not exist that day
    assert ours["skipped"] == change + 5 * SECOND - HOUR + timedelta(days=1)  # tomorrow's

    [(after, after_next)] = fired["after"]
    assert after == change + 5 * SECOND == ours["after"]
    assert after_next == after + timedelta(days=1)

    [(first, first_next)] = fired["first"]
    assert first == change - 5 * SECOND == ours["first"]  # the earlier 02:59:55
    assert first_next == first + HOUR  # and the later one is its next tick
    assert cron.parse("55 59 2 * * *").after(first, fall) == first_next

    [(second, second_next)] = fired["second"]
    assert second == change + 5 * SECOND == ours["second"]  # the later 02:00:05
    assert cron.parse("5 0 2 * * *").after(second, fall) == second_next


async def _until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


async def _ticks(nc: Client, subject: str) -> list[tuple[datetime, datetime]]:
    """Each tick on ``subject``: its second, and the next tick it names."""
    out: list[tuple[datetime, datetime]] = []
    seq = 0
    while True:
        got = await api(
            nc, f"$JS.API.STREAM.MSG.GET.{STREAM}", {"seq": seq + 1, "next_by_subj": subject}
        )
        if "message" not in got:
            return out
        raw = got["message"]
        seq = raw["seq"]
        lines = base64.b64decode(raw.get("hdrs") or "").decode().split("\r\n")[1:]
        headers = dict(line.split(": ", 1) for line in lines if ": " in line)
        announced = datetime.fromisoformat(headers["Nats-Schedule-Next"]).astimezone(UTC)
        out.append((parse_time(raw["time"]).replace(microsecond=0), announced))

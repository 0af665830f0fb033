"""``conveyor export``: the event log as JSON Lines, read from the log itself (``NATS_URL``).

One event a line, in log order, in the shape of SPEC §2 (``{seq, type, job_id, at, actor,
data}``, the shape of ``GET /api/v1/events`` and of the websocket feed), as this version
reads it: an old version of an event is upcast (conveyor_events.upcast). Deleted jobs'
events are included: the log keeps them. The log is read as it is when the command starts
(later events are not waited for), a batch at a time, so memory stays flat whatever its size.

``--since``/``--until`` compare the time the log stored each event (conveyor_bus.logwindow).
A message the log holds on an event subject that is not a readable event (poison: what the
projector parks as a dead letter) has no event shape: it is skipped, with a warning on
stderr naming its sequence and why, and counted in the summary. Exit 0 even then; 2 on bad
arguments, 1 when the log cannot be read to the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from conveyor_events.events import EVENT_TYPES

if TYPE_CHECKING:
    from nats.aio.client import Client

    from conveyor_bus.logwindow import Window

JOB_ID = re.compile(r"[0-9A-Za-z_-]{1,128}")
"""What ``--job`` accepts: one subject token (job ids are ULIDs)."""
POISON_WARNINGS = 20
"""Poison messages named one by one on stderr; the rest are counted."""


def add_parser(sub: Any) -> None:
    """The ``export`` command on the main parser's ``sub``."""
    s = sub.add_parser("export", help="write the event log as JSON Lines (one event a line)")
    s.add_argument("--job", type=_job_id, help="only this job's events (deleted jobs too)")
    s.add_argument(
        "--type",
        type=event_types,
        default=(),
        help=f"only these event types, a comma list of {', '.join(EVENT_TYPES)}",
    )
    s.add_argument("--since", type=rfc3339, help="events stored at or after this time (RFC 3339)")
    s.add_argument("--until", type=rfc3339, help="events stored at or before this time")
    s.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")


def rfc3339(text: str) -> datetime:
    """An RFC 3339 time with its UTC offset (``2026-12-07T10:00:00Z``, ``...+01:00``)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        value = None
    if value is None or value.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an RFC 3339 time with a UTC offset, e.g. 2026-12-07T10:00:00Z"
        )
    return value


def event_types(text: str) -> tuple[str, ...]:
    """A comma list of event types (wire names); blanks around items ignored."""
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [t for t in items if t not in EVENT_TYPES]
    if unknown or not items:
        raise argparse.ArgumentTypeError(
            f"unknown event type {', '.join(map(repr, unknown)) or repr(text)}; "
            f"known: {', '.join(EVENT_TYPES)}"
        )
    return items


def _job_id(text: str) -> str:
    if JOB_ID.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a job id (letters, digits, _ and -, as `conveyor list` shows)"
        )
    return text


def run(args: argparse.Namespace) -> int:
    from conveyor_bus.settings import BusSettings

    if args.since is not None and args.until is not None and args.since > args.until:
        print("conveyor export: --since is after --until", file=sys.stderr)
        return 2
    settings = BusSettings()
    try:
        if args.output is None:
            return asyncio.run(_main(settings.nats_url, args, sys.stdout.buffer))
        with args.output.open("wb") as out:
            return asyncio.run(_main(settings.nats_url, args, out))
    except BrokenPipeError:  # `conveyor export | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return 0
    except OSError as e:
        print(f"conveyor export: {e}", file=sys.stderr)
        return 1


async def _main(nats_url: str, args: argparse.Namespace, out: BinaryIO) -> int:
    from conveyor_bus import BusError, connect
    from conveyor_bus.logwindow import Window
    from conveyor_bus.runtime import EXIT_LAYOUT
    from conveyor_bus.topology import LayoutError, check_layout

    window = Window(job_id=args.job, types=args.type, since=args.since, until=args.until)
    nc = await connect(nats_url, "conveyor-export")
    try:
        try:
            if not await check_layout(nc):
                print("conveyor export: no event log yet (run conveyor migrate)", file=sys.stderr)
                return 0
        except LayoutError as e:
            print(f"conveyor export: {e}", file=sys.stderr)
            return EXIT_LAYOUT
        bar = _Bar() if sys.stderr.isatty() else None
        try:
            summary = await export(nc, window, out, progress=bar, warn=_warn)
        except BusError as e:
            print(f"\nconveyor export: reading the log: {e}", file=sys.stderr)
            return 1
        if bar is not None:
            bar.close()
        if bar is not None or summary.skipped:
            print(summary.render(), file=sys.stderr)
        return 0
    finally:
        await nc.close()


class Summary:
    def __init__(self, first: int, last: int) -> None:
        self.first, self.last = first, last
        self.exported = 0
        self.skipped: list[int] = []
        """The sequences of the poison messages left out."""

    def render(self) -> str:
        text = f"exported {self.exported} events (log sequences {self.first} to {self.last})"
        if self.skipped:
            text += (
                f"; skipped {len(self.skipped)} messages that are no readable event (poison,"
                f" the projector's dead letters), the first at sequence {self.skipped[0]}"
            )
        return text


async def export(
    nc: Client,
    window: Window,
    out: BinaryIO,
    *,
    progress: Callable[[int, int, int], None] | None = None,
    warn: Callable[[int, str], None] | None = None,
) -> Summary:
    """Write the events of ``window`` stored up to now to
    ``out`` as JSON Lines; ``progress(seq, first, last)`` after each batch."""
    from conveyor_bus.logwindow import LogWindows, Span, frame
    from conveyor_events.poison import Poison, read_event

    windows = LogWindows(nc)
    span = await windows.span(window)
    end = await windows.last_seq()
    span = Span(span.first, end if span.last is None else min(span.last, end))
    summary = Summary(span.first, span.last if span.last is not None else end)
    async for batch in windows.read(window, span, ahead=True):
        lines = bytearray()
        for m in batch:
            found = read_event(m.subject, m.data)
            if isinstance(found, Poison):
                summary.skipped.append(m.seq)
                if warn is not None and len(summary.skipped) <= POISON_WARNINGS:
                    warn(m.seq, f"{found.kind}: {found.reason}")
                continue
            lines += frame(m.seq, found)
            lines += b"\n"
            summary.exported += 1
        out.write(lines)
        if progress is not None:
            progress(batch[-1].seq, summary.first, summary.last)
    out.flush()
    return summary


def _warn(seq: int, reason: str) -> None:
    print(f"\rconveyor export: skipped seq {seq}, not an event: {reason}", file=sys.stderr)


class _Bar:
    """A progress bar on a terminal: how far through the window's sequences, events/s."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.shown = 0.0
        self.count = 0

    def __call__(self, seq: int, first: int, last: int) -> None:
        now = time.monotonic()
        self.count += 1
        if now - self.shown < 0.2:
            return
        self.shown = now
        done = (seq - first + 1) / (last - first + 1) if last >= first else 1.0
        bar = "#" * int(30 * min(done, 1.0))
        rate = (seq - first + 1) / max(now - self.started, 1e-6)
        print(
            f"\rexporting [{bar:<30}] seq {seq}/{last}  {rate:,.0f} msgs/s",
            end="",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        print("\r" + " " * 79 + "\r", end="", file=sys.stderr, flush=True)

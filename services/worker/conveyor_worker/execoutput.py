"""What an ``exec`` job's program writes, read in bounded memory: ``PROGRESS`` lines become
progress, the last other stdout line is the result, the last 4 KiB of stderr the error."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec

LINE_LIMIT = 64 * 1024  # bytes kept of a stdout line, the rest dropped (and counted)
STDERR_TAIL = 4 * 1024  # bytes kept of stderr, the last ones
MESSAGE_LIMIT = 1_000  # characters kept of a progress message

_PERCENT = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)%?")


def progress_line(line: str) -> tuple[float, str | None] | None:
    """``(percent, message)`` of a ``PROGRESS <0-100> [message]`` line, None for any other
    line; a ValueError for a PROGRESS line without a percent from 0 to 100."""
    if not line.startswith("PROGRESS") or line[8:9] not in ("", " ", "\t"):
        return None
    fields = line[8:].split(None, 1)
    if not fields or not _PERCENT.fullmatch(fields[0]):
        shown = fields[0][:40] if fields else ""
        raise ValueError(f"{shown!r} is not a percent (PROGRESS <0-100> [message])")
    percent = float(fields[0].removesuffix("%"))
    if percent > 100:
        raise ValueError(f"{fields[0]} is past 100 (PROGRESS <0-100> [message])")
    message = fields[1].strip()[:MESSAGE_LIMIT] if len(fields) > 1 else ""
    return percent, message or None


class Output:
    """What is kept of a program's output: progress goes to ``on_progress`` as it comes, the
    last other stdout line (``LINE_LIMIT`` bytes of it) and the last ``STDERR_TAIL`` bytes of
    stderr stay. Memory is bounded whatever the program writes."""

    def __init__(self, on_progress: Callable[[float, str | None], None]) -> None:
        self._on_progress = on_progress
        self._line, self._line_bytes = bytearray(), 0
        self.last: str | None = None
        self._stderr, self.stderr_bytes = bytearray(), 0
        self.malformed, self.first_malformed = 0, ""

    def stdout(self, data: bytes) -> None:
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            self._keep(data, start, end)
            self._end_line()
            start = end + 1
        self._keep(data, start, len(data))

    def close(self) -> None:
        """stdout ended: a last line without a newline is a line too."""
        if self._line_bytes:
            self._end_line()

    def _keep(self, data: bytes, start: int, end: int) -> None:
        room = LINE_LIMIT - len(self._line)
        if room > 0:
            self._line += data[start : min(end, start + room)]
        self._line_bytes += end - start

    def _end_line(self) -> None:
        text = self._line.decode("utf-8", "replace").removesuffix("\r")
        if self._line_bytes > LINE_LIMIT:
            text += f" …[truncated: {self._line_bytes} bytes, the first {LINE_LIMIT} kept]"
        self._line.clear()
        self._line_bytes = 0
        try:
            progress = progress_line(text)
        except ValueError as e:
            self.malformed += 1
            self.first_malformed = self.first_malformed or str(e)
            return
        if progress is not None:
            self._on_progress(*progress)
        elif text.strip():
            self.last = text

    def stderr(self, data: bytes) -> None:
        self.stderr_bytes += len(data)
        self._stderr += data[-STDERR_TAIL:]
        del self._stderr[:-STDERR_TAIL]

    def stderr_tail(self) -> str:
        tail = bytes(self._stderr)
        if self.stderr_bytes <= STDERR_TAIL:
            return tail.decode("utf-8", "replace")
        while tail and tail[0] & 0xC0 == 0x80:  # the cut fell inside a character
            tail = tail[1:]
        return "…" + tail.decode("utf-8", "replace")

    def result(self) -> Any:
        if self.last is None:
            return None
        try:
            return msgspec.json.decode(self.last)
        except msgspec.DecodeError:
            return self.last

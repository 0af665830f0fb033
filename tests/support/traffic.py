"""Background traffic for fault tests: a steady submitter and a websocket feed listener, each
on its own thread, recording what they saw and when (``time.monotonic()``)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect as ws_connect

TERMINAL_EVENTS = ("job.completed", "job.failed", "job.stopped", "job.deleted")


@dataclass(frozen=True, slots=True)
class Answer:
    started: float
    elapsed: float
    status: int
    """HTTP status; 0 when the request itself failed (no answer in time)."""
    content_type: str
    job_id: str | None
    detail: str


class Submitter(threading.Thread):
    """POSTs a job every ``interval`` seconds until stopped; every answer is recorded."""

    def __init__(self, api_url: str, body: dict[str, Any], interval: float = 0.05) -> None:
        super().__init__(name="submitter", daemon=True)
        self.http = httpx.Client(base_url=api_url, timeout=15)
        self.body = body
        self.interval = interval
        self.answers: list[Answer] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            started = time.monotonic()
            try:
                r = self.http.post("/api/v1/jobs", json=self.body)
                job_id = r.json().get("id") if r.status_code in (200, 201) else None
                answer = Answer(
                    started,
                    time.monotonic() - started,
                    r.status_code,
                    r.headers.get("content-type", ""),
                    job_id,
                    r.text[:300],
                )
            except httpx.HTTPError as e:
                answer = Answer(started, time.monotonic() - started, 0, "", None, repr(e))
            self.answers.append(answer)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(30)
        self.http.close()

    def accepted(self) -> list[Answer]:
        return [a for a in self.answers if a.status in (200, 201, 202)]

    def first_accepted_after(self, t: float) -> Answer | None:
        return next((a for a in self.accepted() if a.started >= t), None)


class Feed(threading.Thread):
    """A websocket client of the notifier that reconnects with ``since`` when dropped."""

    def __init__(self, ws_url: str) -> None:
        super().__init__(name="feed", daemon=True)
        self.ws_url = ws_url
        self.frames: list[tuple[float, dict[str, Any]]] = []
        self.connections = 0
        self._halt = threading.Event()
        self.connected = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            last = self.frames[-1][1]["seq"] if self.frames else None
            url = self.ws_url if last is None else f"{self.ws_url}?since={last}"
            try:
                with ws_connect(url, open_timeout=5, close_timeout=1) as ws:
                    self.connections += 1
                    self.connected.set()
                    while not self._halt.is_set():
                        try:
                            raw = ws.recv(timeout=0.2)
                        except TimeoutError:
                            continue
                        self.frames.append((time.monotonic(), json.loads(raw)))
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError):
                self._halt.wait(0.2)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def first_after(self, t: float, event_type: str) -> float | None:
        """When the first frame of ``event_type`` arrived after ``t``."""
        return next((at for at, f in self.frames if at >= t and f["type"] == event_type), None)

    def first(self, job_id: str, event_type: str) -> float | None:
        """When a frame of ``event_type`` for ``job_id`` arrived."""
        return next(
            (t for t, f in self.frames if f["job_id"] == job_id and f["type"] == event_type), None
        )


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05) -> float:
    """Poll ``predicate()`` until true; the time it took. Raises AssertionError on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    raise AssertionError(f"not within {timeout}s")

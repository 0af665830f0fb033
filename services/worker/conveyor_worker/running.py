"""One attempt in progress on this worker: its message, its place in the log, its handler."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from nats.aio.msg import Msg

import conveyor
from conveyor_events import JobState

CancelReason = Literal["stop", "shutdown", "fenced"]


@dataclass(eq=False)
class RunningJob:
    msg: Msg
    state: JobState
    last_seq: int
    """Our last append to the job's subject: the expected sequence of the next one."""
    started: float = field(default_factory=time.monotonic)
    handler_task: asyncio.Task[Any] | None = None
    context: conveyor.Context | None = None
    cancel_reason: CancelReason | None = None
    pending_progress: tuple[float, str | None] | None = None
    progress_task: asyncio.Task[None] | None = None
    last_progress_at: float = 0.0

    @property
    def job_id(self) -> str:
        return self.state.id

    @property
    def attempt(self) -> int:
        return self.state.attempt

    def cancel(self, reason: CancelReason) -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason
        if self.context is not None:
            self.context.cancel()  # what a sync handler looks at
        if self.handler_task is not None and not self.handler_task.done():
            self.handler_task.cancel()

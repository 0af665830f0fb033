"""What a handler raises to say how its attempt ends, other than by returning."""

from __future__ import annotations


class PermanentFailure(Exception):
    """No retry can fix this: the job fails now, its remaining attempts skipped."""


class Retry(Exception):
    """Try again after ``delay_s`` seconds (instead of the worker's backoff). It counts as an
    attempt: with none left the job fails, with this exception as its error."""

    def __init__(self, delay_s: float = 0.0, message: str | None = None) -> None:
        if not delay_s >= 0:  # also refuses NaN
            raise ValueError(f"Retry(delay_s={delay_s!r}): the delay must be >= 0 seconds")
        self.delay_s = float(delay_s)
        super().__init__(message or f"retry asked for in {self.delay_s:g}s")

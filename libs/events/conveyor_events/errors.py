"""Domain errors: one root, one subclass per rule. The docstring is the default message."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor_events.events import AnyEvent


class DomainError(Exception):
    """The command is not allowed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class JobNotFound(DomainError):
    """No such job (never submitted, or deleted)."""


class JobAlreadyExists(DomainError):
    """A job with this id was already submitted."""


class InvalidTransition(DomainError):
    """The job's status does not allow this action."""


class TooManyRuns(InvalidTransition):
    """The job was queued as often as one job may be: submit a new one."""


class StaleAttempt(InvalidTransition):
    """The attempt is no longer the job's current attempt (fenced off)."""


class StaleRun(InvalidTransition):
    """The run command is not the job's current one (it was superseded)."""


class InvalidPayload(DomainError):
    """The payload does not match the job type's schema."""

    def __init__(self, message: str, field: str = "payload") -> None:
        super().__init__(message)
        self.field = field


class UnknownJobType(InvalidPayload):
    """No such job type."""


class IllegalEvent(DomainError):
    """The transitions table forbids this event in the job's state (poison in the log)."""

    def __init__(self, problem: str, event: AnyEvent) -> None:
        super().__init__(f"{event.name} for job {event.job_id}: {problem}")
        self.problem = problem
        self.event = event


class ConcurrencyConflict(Exception):
    """Another writer appended to the job first: its expected last sequence was stale, and
    nothing was written. Reload the job and decide again."""


class TooManyConflicts(ConcurrencyConflict):
    """The job kept changing under every retry of a command; try again later."""

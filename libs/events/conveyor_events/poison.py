"""Reading a message of the event log without trusting it: the event, or why it is poison.

Every reader of the log (projector, notifier, ``conveyor verify``) classifies a stored message
the same way, so that what the projector parks in its dead-letter table is exactly what
``verify`` expects to find there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

import msgspec

from conveyor_events.events import (
    EVENT_TYPES,
    AnyEvent,
    JobSubmitted,
    decode_event,
    delivered_now,
    runnable,
)
from conveyor_events.names import parse_event_subject

PoisonKind = Literal[
    "undecodable", "unknown_type", "invalid", "wrong_subject", "impossible_transition",
    "unstorable",
]  # fmt: skip
POISON_KINDS: Final[tuple[PoisonKind, ...]] = get_args(PoisonKind)
"""Why an event is parked: not JSON (or nested too deep); an event type nobody knows; a known
type whose fields break its schema; an event its subject does not describe (another job's,
another event type's, or on a work queue it does not belong on); a transition the table
forbids (e.g. ``job.completed`` for a job never started); a value the read model cannot hold
(e.g. a NUL character, an integer out of range)."""

REASON_LIMIT: Final = 500
"""Characters of a reason kept (reasons may quote the input)."""


@dataclass(frozen=True, slots=True)
class Poison:
    """A message that is not an event Conveyor can apply, and why, in clear text."""

    kind: PoisonKind
    reason: str


def read_event(subject: str, raw: bytes) -> AnyEvent | Poison:
    """The event stored as ``raw`` on ``subject``, or :class:`Poison` saying why it is not
    one. Never raises on bad input."""
    try:
        event = decode_event(raw)
    except msgspec.DecodeError as e:  # ValidationError is a DecodeError
        return _diagnose(raw, e)
    except RecursionError:
        return poison("undecodable", "JSON nested too deeply to decode")
    problem = _subject_problem(subject, event)
    return event if problem is None else poison("wrong_subject", problem)


def _subject_problem(subject: str, event: AnyEvent) -> str | None:
    """Why ``event`` cannot be stored on ``subject`` (names.py's layout), or None."""
    where = parse_event_subject(subject)
    if where is None:
        return f"{event.name} stored on {subject!r}, which is not an event subject"
    if event.job_id != where.job_id:
        owner = where.job_id
        return f"{event.name} for job {event.job_id!r} stored on the subject of job {owner!r}"
    if event.name != where.event_type:
        return f"{event.name} stored on the subject of a {where.event_type}"
    if where.priority is not None and not runnable(event):
        return f"{event.name} (not runnable) stored on a work queue: {subject!r}"
    if where.priority is None and delivered_now(event):
        return f"{event.name} (runnable at once) stored on no work queue: {subject!r}"
    if (
        isinstance(event, JobSubmitted)
        and where.priority is not None
        and event.data.priority != where.priority
    ):
        return f"a {event.data.priority} job submitted on the {where.priority} work queue"
    return None


def poison(kind: PoisonKind, reason: str) -> Poison:
    """A :class:`Poison` with a reason fit to store and print (one line, no NUL, bounded)."""
    text = " ".join(reason.replace("\x00", "\\x00").split())
    if len(text) > REASON_LIMIT:
        text = text[: REASON_LIMIT - 3] + "..."
    return Poison(kind, text)


def _diagnose(raw: bytes, error: msgspec.DecodeError) -> Poison:
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError as e:
        return poison("undecodable", f"not JSON: {e}")
    except RecursionError:
        return poison("undecodable", "JSON nested too deeply to decode")
    if not isinstance(doc, dict):
        return poison("invalid", f"a JSON {_json_type(doc)}, not an event object")
    if "type" not in doc:
        return poison("unknown_type", "no event type (the object has no `type` field)")
    type_ = doc["type"]
    if not isinstance(type_, str) or type_ not in EVENT_TYPES:
        return poison(
            "unknown_type",
            f"unknown event type {type_!r}; known types: {', '.join(EVENT_TYPES)}",
        )
    return poison("invalid", f"{type_} does not match its schema: {error}")


def _json_type(doc: object) -> str:
    if isinstance(doc, list):
        return "array"
    if isinstance(doc, str):
        return "string"
    if isinstance(doc, bool):
        return "boolean"
    if isinstance(doc, int | float):
        return "number"
    return "null"

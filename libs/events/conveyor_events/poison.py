"""Reading a message of the event log without trusting it: the event, or why it is poison.

Every reader of the log (projector, notifier, ``conveyor verify``) classifies a stored message
the same way, so that what the projector parks in its dead-letter table is exactly what
``verify`` expects to find there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import msgspec

from conveyor_events.events import EVENT_TYPES, AnyEvent, decode_event
from conveyor_events.invariants import illegal_transition
from conveyor_events.names import job_id_of
from conveyor_events.state import JobState

PoisonKind = Literal[
    "undecodable", "unknown_type", "invalid", "wrong_subject", "impossible_transition",
    "unstorable",
]  # fmt: skip
POISON_KINDS: Final[tuple[PoisonKind, ...]] = (
    "undecodable",
    "unknown_type",
    "invalid",
    "wrong_subject",
    "impossible_transition",
    "unstorable",
)
"""Why an event is parked: not JSON (or nested too deep); an event type nobody knows; a known
type whose fields break its schema; an event whose ``job_id`` is not its subject's; a
transition the table forbids (e.g. ``job.completed`` for a job never started); a value the read
model cannot hold (e.g. a NUL character, an integer out of range)."""

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
    owner = job_id_of(subject)
    if event.job_id != owner:
        return poison(
            "wrong_subject",
            f"{event.name} for job {event.job_id!r} stored on the subject of job {owner!r}",
        )
    return event


def transition_problem(state: JobState | None, event: AnyEvent) -> str | None:
    """Why ``event`` cannot follow ``state`` according to the transitions table (the same rule
    as :func:`conveyor_events.invariants.history_problems`), or None when it can."""
    problem = illegal_transition(state, event)
    return None if problem is None else f"{event.name} for job {event.job_id}: {problem}"


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

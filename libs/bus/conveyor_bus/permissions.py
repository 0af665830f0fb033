"""What each Conveyor service may publish and subscribe to on NATS, as data: the
``permissions`` of one user each in a nats-server ``authorization { users = [...] }`` block
(``conveyor_cli.dev.embedded.NatsServer(users=...)`` writes one; deploy/nats/ shows it by hand).

Every subject is derived from :mod:`conveyor_events.names`. The rules (docs/explanation/
security.md, "Bus credentials"):

- A service writes only the events it decides: the api the operators' (``job.submitted``,
  ``job.stop_requested``, ``job.stopped``, ``job.restarted``, ``job.deleted``), idempotency
  keys, timers and schedules; a worker what a run produces (``job.started`` …
  ``job.stopped``), retry timers, its heartbeats and its job types. The projector and the
  notifier write no event.
- JetStream API calls are allowed one by one, per stream: infos, direct gets, pull requests
  on the consumers a service reads, the purges it needs (the timers a stop cancels, a
  worker's own heartbeat, a deleted schedule). No service may delete or update a stream or
  a consumer, nor purge the event log (which denies purges anyway).
- Creating the topology: the api, the workers and the projector may create Conveyor's five
  streams and its durable consumers (create only: a create never changes an existing
  stream), so each still starts on an empty server; the notifier may not, it reads only and
  starts once another service (or ``conveyor migrate``) has made them.
- ``admin`` (``conveyor migrate``, ``replay``, ``verify``, operators' tools) may do anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

from conveyor_events import names
from conveyor_events.events import (
    EVENT_TYPES,
    JobCompleted,
    JobDeleted,
    JobFailed,
    JobProgressed,
    JobRestarted,
    JobStarted,
    JobStopped,
    JobStopRequested,
    JobSubmitted,
)

API: Final = "$JS.API"
INBOXES: Final = "_INBOX.>"
"""Replies: every JetStream API answer, every publish acknowledgement, every delivery of an
ordered consumer comes to the client's inbox."""


@dataclass(frozen=True, slots=True)
class Permissions:
    """One user's ``permissions``: subjects it may publish to (less ``publish_deny``, which
    wins) and subscribe to."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    publish_deny: tuple[str, ...] = field(default=())

    def config(self) -> dict[str, Any]:
        """The ``permissions`` map of a nats-server user."""
        publish: dict[str, list[str]] = {"allow": list(self.publish)}
        if self.publish_deny:
            publish["deny"] = list(self.publish_deny)
        return {"publish": publish, "subscribe": {"allow": list(self.subscribe)}}

    def allows_publish(self, subject: str) -> bool:
        """Whether nats-server lets this user publish to ``subject`` (a literal subject)."""
        return any(matches(p, subject) for p in self.publish) and not any(
            matches(p, subject) for p in self.publish_deny
        )


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` one token, ``>`` one or more at the end."""
    want, got = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or (token != "*" and token != got[i]):
            return False
    return len(want) == len(got)


def _tag(event: type) -> str:
    tag = str(event.__struct_config__.tag)  # type: ignore[attr-defined]
    assert tag in EVENT_TYPES, tag
    return tag


def events(*types: type, runnable: tuple[type, ...] = ()) -> tuple[str, ...]:
    """The subjects of these event types of any job; ``runnable`` ones also with a priority
    token (``conveyor.job.*.submitted.*``)."""
    plain = tuple(names.event_subject("*", _tag(t)) for t in types)
    return plain + tuple(f"{names.event_subject('*', _tag(t))}.*" for t in runnable)


def stream_api(action: str, *streams: str) -> tuple[str, ...]:
    """``$JS.API.STREAM.<action>.<stream>`` for each stream."""
    return tuple(f"{API}.STREAM.{action}.{s}" for s in streams)


def direct_gets(*streams: str) -> tuple[str, ...]:
    return tuple(f"{API}.DIRECT.GET.{s}" for s in streams) + tuple(
        f"{API}.DIRECT.GET.{s}.>" for s in streams
    )


def pulls(stream: str, *consumers: str) -> tuple[str, ...]:
    """Pull requests, infos and acknowledgements on these consumers of ``stream``."""
    return tuple(
        subject
        for c in consumers
        for subject in (
            f"{API}.CONSUMER.MSG.NEXT.{stream}.{c}",
            f"{API}.CONSUMER.INFO.{stream}.{c}",
            f"$JS.ACK.{stream}.{c}.>",
        )
    )


RUN_CONSUMERS: Final = tuple(names.run_consumer(p) for p in names.PRIORITIES)
ALL_STREAMS: Final = (
    names.TIMERS_STREAM,
    names.STREAM,
    names.WORKERS_STREAM,
    names.TYPES_STREAM,
    names.SCHEDULES_STREAM,
)
"""The streams of :func:`conveyor_bus.topology.ensure_topology`."""

DURABLES: Final = (
    *((names.STREAM, c) for c in RUN_CONSUMERS),
    (names.SCHEDULES_STREAM, names.SCHEDULE_TICK_CONSUMER),
)
"""The durable consumers of :func:`conveyor_bus.topology.ensure_topology`: (stream, name)."""

READ: Final = (
    f"{API}.INFO",
    *stream_api("INFO", *ALL_STREAMS, names.LEGACY_STREAM),
    *(f"{API}.CONSUMER.INFO.{s}.{c}" for s, c in DURABLES),
    *direct_gets(names.STREAM),
)
"""What every service does: account info, stream and durable consumer infos (what
``ensure_topology`` finds made; the layout check reads the legacy stream's too), direct gets
on the log."""

LOG_READER: Final = (
    f"{API}.CONSUMER.CREATE.{names.STREAM}",
    f"{API}.CONSUMER.MSG.NEXT.{names.STREAM}.*",
    f"{API}.CONSUMER.INFO.{names.STREAM}.*",
)
"""``conveyor_bus.reader.LogReader``: an ephemeral consumer of the log (the server refuses a
durable name on this subject) and its pull requests."""

NOT_THE_WORKERS_QUEUES: Final = tuple(
    f"{API}.CONSUMER.MSG.NEXT.{names.STREAM}.{c}" for c in RUN_CONSUMERS
)
"""A reader of the log may pull from its own consumer, not take the workers' runs."""

CREATE_TOPOLOGY: Final = (
    *stream_api("CREATE", *ALL_STREAMS),
    *(f"{API}.CONSUMER.CREATE.{s}.{c}" for s, c in DURABLES),
)
"""Create (never update, never delete) the streams and durable consumers."""

TIMERS: Final = (f"{names.TIMER_PREFIX}.*", *stream_api("PURGE", names.TIMERS_STREAM))
"""Set a job's timer, remove it (a stop, a delete, a completion cancels it)."""

API_SERVICE: Final = Permissions(
    publish=(
        *READ,
        *CREATE_TOPOLOGY,
        *events(
            JobSubmitted,
            JobStopRequested,
            JobStopped,
            JobRestarted,
            JobDeleted,
            runnable=(JobSubmitted, JobRestarted),
        ),
        f"{names.KEY_PREFIX}.*",
        *TIMERS,
        names.STOP_SIGNAL,
        *direct_gets(names.TYPES_STREAM, names.WORKERS_STREAM, names.SCHEDULES_STREAM),
        f"{names.SCHEDULE_DEF_PREFIX}.*",
        *stream_api("MSG.GET", names.SCHEDULES_STREAM),
        *stream_api("PURGE", names.SCHEDULES_STREAM),
        *pulls(names.SCHEDULES_STREAM, names.SCHEDULE_TICK_CONSUMER),
        *LOG_READER,
    ),
    publish_deny=NOT_THE_WORKERS_QUEUES,
    subscribe=(INBOXES,),
)

WORKER: Final = Permissions(
    publish=(
        *READ,
        *CREATE_TOPOLOGY,
        *events(
            JobStarted,
            JobProgressed,
            JobCompleted,
            JobFailed,
            JobStopped,
            runnable=(JobFailed,),
        ),
        *TIMERS,
        f"{names.WORKERS_PREFIX}.*",
        *stream_api("PURGE", names.WORKERS_STREAM),
        f"{names.TYPES_PREFIX}.>",
        *pulls(names.STREAM, *RUN_CONSUMERS),
    ),
    subscribe=(INBOXES, names.STOP_SIGNAL),
)

PROJECTOR: Final = Permissions(
    publish=(*READ, *CREATE_TOPOLOGY, *LOG_READER),
    publish_deny=NOT_THE_WORKERS_QUEUES,
    subscribe=(INBOXES,),
)

NOTIFIER: Final = Permissions(
    publish=(*READ, *LOG_READER),
    publish_deny=NOT_THE_WORKERS_QUEUES,
    subscribe=(INBOXES,),
)

ADMIN: Final = Permissions(publish=(">",), subscribe=(">",))

SERVICES: Final[dict[str, Permissions]] = {
    "api": API_SERVICE,
    "worker": WORKER,
    "projector": PROJECTOR,
    "notifier": NOTIFIER,
    "admin": ADMIN,
}
"""One NATS user per service (the user's name is the key), and ``admin`` for the CLI."""


EXAMPLE_HEADER: Final = """\
# Bus credentials (docs/explanation/security.md): one NATS user per Conveyor service, each
# allowed only the subjects it publishes and subscribes to. Written by
# conveyor_bus.permissions.example_authorization() from the same sets the services are
# tested with (tests/integration/test_nats_permissions.py checks this file is up to date and
# that nats-server accepts it). To use it: add `include authorization.conf` to nats.conf,
# set the five passwords in the server's environment, and give each service a NATS_URL with
# its own user (nats://worker:<password>@nats:4222). `conveyor migrate` and the other admin
# commands log in as admin.
"""


def example_authorization() -> str:
    """deploy/nats/authorization.conf: the ``authorization`` block of :data:`SERVICES`, each
    password taken from the server's environment (``$CONVEYOR_NATS_<SERVICE>_PASSWORD``)."""
    users = []
    for name, permissions in SERVICES.items():
        body = json.dumps(permissions.config(), indent=2).replace("\n", "\n      ")
        users.append(
            f"    {{\n      user: {json.dumps(name)}\n"
            f"      password: $CONVEYOR_NATS_{name.upper()}_PASSWORD\n"
            f"      permissions: {body}\n    }}"
        )
    return EXAMPLE_HEADER + "authorization {\n  users = [\n" + "\n".join(users) + "\n  ]\n}\n"

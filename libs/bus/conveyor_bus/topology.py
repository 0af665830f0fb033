"""The JetStream topology, created (or brought up to date) idempotently at start-up."""

from __future__ import annotations

import json
import logging
from typing import Any, Final

from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeout

from conveyor_bus.connection import require_connected
from conveyor_bus.errors import BusError, BusUnavailable
from conveyor_events import names

log = logging.getLogger("conveyor.bus")

DEFAULT_ACK_WAIT_S = 30.0


class LayoutError(BusError):
    """The server holds a Conveyor log this version cannot use as it is."""


MIGRATING: Final = "in progress"
"""The ``conveyor_migrated_from`` metadata of a log that ``conveyor migrate`` is still
copying."""


def event_log_config(replicas: int = 1, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "name": names.STREAM,
        "subjects": list(names.STREAM_SUBJECTS),
        "retention": "limits",
        "storage": "file",
        "num_replicas": replicas,
        "discard": "old",
        "deny_delete": True,
        "deny_purge": True,
        "allow_direct": True,
        "allow_atomic": True,
        "duplicate_window": 120 * 10**9,
        # the due messages the timers fire: sourced, so the log stays deny-delete and
        # deny-purge (a stream that allows schedules allows purges and roll-ups: ADR 14)
        "sources": [{"name": names.TIMERS_STREAM, "filter_subject": names.DUE_ALL}],
        "metadata": {names.LAYOUT_KEY: names.LAYOUT, **(metadata or {})},
    }


def timers_config(replicas: int = 1) -> dict[str, Any]:
    return {
        "name": names.TIMERS_STREAM,
        "subjects": list(names.TIMERS_SUBJECTS),
        "retention": "limits",
        "storage": "file",
        "num_replicas": replicas,
        "discard": "old",
        "allow_msg_schedules": True,
        "allow_msg_ttl": True,  # a due message is kept a week (timers.DUE_TTL)
        "allow_atomic": True,  # the timers of one append are one batch
        "max_msgs_per_subject": 1,  # one timer per job, one due per job
    }


def workers_config(ttl_s: float, replicas: int = 1) -> dict[str, Any]:
    return {
        "name": names.WORKERS_STREAM,
        "subjects": [names.WORKERS_ALL],
        "retention": "limits",
        "storage": "memory",
        "num_replicas": replicas,
        "max_msgs_per_subject": 1,
        "max_age": int(ttl_s * 10**9),
        "allow_direct": True,
        "discard": "old",
    }


def types_config(replicas: int = 1) -> dict[str, Any]:
    return {
        "name": names.TYPES_STREAM,
        "subjects": [names.TYPES_ALL],
        "retention": "limits",
        "storage": "file",
        "num_replicas": replicas,
        "max_msgs_per_subject": 1,
        "max_msg_size": 1024 * 1024,
        "allow_direct": True,
        "discard": "old",
    }


SCHEDULE_TICKS_KEPT: Final = 100
"""Ticks kept per schedule (and messages per definition subject, which keeps one): the most
jobs one schedule can catch up on after every API process was down while nats-server
ticked on."""


def schedules_config(replicas: int = 1) -> dict[str, Any]:
    return {
        "name": names.SCHEDULES_STREAM,
        "subjects": [names.SCHEDULE_DEFS_ALL, names.SCHEDULE_TICKS_ALL],
        "retention": "limits",
        "storage": "file",
        "num_replicas": replicas,
        "max_msgs_per_subject": SCHEDULE_TICKS_KEPT,
        "max_msg_size": 1024 * 1024,
        "allow_msg_schedules": True,
        "allow_rollup_hdrs": True,
        "allow_direct": True,
        "discard": "old",
    }


def schedule_ticks_consumer_config(ack_wait_s: float) -> dict[str, Any]:
    return {
        "durable_name": names.SCHEDULE_TICK_CONSUMER,
        "filter_subject": names.SCHEDULE_TICKS_ALL,
        "ack_policy": "explicit",
        "ack_wait": int(ack_wait_s * 10**9),
        "deliver_policy": "all",
        "max_deliver": -1,
        "replay_policy": "instant",
    }


def run_consumer_config(priority: names.Priority, ack_wait_s: float) -> dict[str, Any]:
    return {
        "durable_name": names.run_consumer(priority),
        "filter_subjects": [names.runnable_subjects(priority), names.due_subjects(priority)],
        "ack_policy": "explicit",
        "ack_wait": int(ack_wait_s * 10**9),
        "deliver_policy": "all",
        "max_deliver": -1,
        "max_ack_pending": -1,  # runs held until due must not stop due ones (ADR 0010)
        "max_waiting": 2048,
        "replay_policy": "instant",
    }


async def api_request(
    nc: Client, subject: str, body: dict[str, Any] | None = None, timeout: float = 5.0
) -> dict[str, Any]:
    """A JetStream API call; raises BusError with the server's description on error."""
    payload = json.dumps(body).encode() if body is not None else b""
    require_connected(nc)
    try:
        reply = await nc.request(subject, payload, timeout=timeout)
    except NatsTimeout as e:
        raise BusUnavailable(f"no answer to {subject}") from e
    except Exception as e:
        raise BusUnavailable(f"{subject}: {e}") from e
    data: dict[str, Any] = json.loads(reply.data)
    if "error" in data:
        err = data["error"]
        raise BusError(f"{subject}: {err.get('description')} (code {err.get('err_code')})")
    return data


STREAM_NAME_IN_USE = 10058
CONSUMER_EXISTS = 10148
CONSUMER_NOT_FOUND = 10014


STREAM_NOT_FOUND = 10059


async def stream_info(nc: Client, name: str) -> dict[str, Any] | None:
    """The stream's info, or None when there is no such stream."""
    try:
        return await api_request(nc, f"$JS.API.STREAM.INFO.{name}")
    except BusError as e:
        if f"code {STREAM_NOT_FOUND}" in str(e):
            return None
        raise


async def check_layout(nc: Client, *, upgrading: bool = False) -> bool:
    """Whether the event log exists in this version's layout; raises LayoutError, saying
    what to do, when the server holds a log this version must not write to: one of an
    older layout (``conveyor migrate`` copies it, or upgrades it in place) or one that a
    migration is still writing. ``upgrading``: ``conveyor migrate`` asks, which brings a
    log of an upgradable layout to this one."""
    info = await stream_info(nc, names.STREAM)
    if info is None:
        legacy = await stream_info(nc, names.LEGACY_STREAM)
        if legacy is not None and not legacy["config"].get("sealed"):
            raise LayoutError(
                f"this NATS server holds a Conveyor event log in the old layout (stream "
                f"{names.LEGACY_STREAM}: subjects conveyor.events.*, conveyor.run.*), which this "
                f"version does not read. Stop every Conveyor service, then run `conveyor "
                f"migrate`: it copies the log into stream {names.STREAM} and rebuilds the read "
                f"model ({legacy['state']['messages']} messages to copy)"
            )
        return False
    metadata = info["config"].get("metadata") or {}
    layout = metadata.get(names.LAYOUT_KEY)
    if layout in names.UPGRADABLE_LAYOUTS and not upgrading:
        raise LayoutError(
            f"stream {names.STREAM} has layout {layout!r}; this version of Conveyor writes "
            f"layout {names.LAYOUT!r} (timers for runs due later, ADR 14). Stop every Conveyor "
            "service, then run `conveyor migrate`: it upgrades the log in place, in seconds"
        )
    if layout != names.LAYOUT and layout not in names.UPGRADABLE_LAYOUTS:
        raise LayoutError(
            f"stream {names.STREAM} has layout {layout!r}; this version of Conveyor writes "
            f"layout {names.LAYOUT!r}. Run the version of Conveyor that wrote it, or migrate"
        )
    if metadata.get(names.MIGRATED_FROM_KEY) == MIGRATING:
        raise LayoutError(
            f"`conveyor migrate` has not finished copying the old log into {names.STREAM}; "
            "run `conveyor migrate` again (it resumes where it stopped)"
        )
    return True


NOT_ALLOWED_HINT: Final = (
    "; if this service's NATS user may not create the topology (the notifier's may not: "
    "docs/explanation/security.md, Bus credentials), run `conveyor migrate` with the admin's "
    "credentials first"
)


async def _create(nc: Client, subject: str, body: dict[str, Any]) -> None:
    """A create of the topology: a NATS user without the right gets no answer (nats-server
    drops the request), which is said so."""
    try:
        await api_request(nc, subject, body)
    except BusUnavailable as e:
        raise BusUnavailable(f"{e}{NOT_ALLOWED_HINT}") from e


async def _ensure_stream(nc: Client, config: dict[str, Any], update: bool) -> None:
    name = config["name"]
    if not update and await stream_info(nc, name) is not None:
        return  # a create needs a right that a reading service has not (see permissions.py)
    try:
        await _create(nc, f"$JS.API.STREAM.CREATE.{name}", config)
    except BusError as e:
        if f"code {STREAM_NAME_IN_USE}" not in str(e):
            raise
        if update:
            current = await stream_info(nc, name)
            if current is not None:  # keep metadata that is not ours to set
                kept = current["config"].get("metadata") or {}
                config = {**config, "metadata": {**kept, **(config.get("metadata") or {})}}
            await api_request(nc, f"$JS.API.STREAM.UPDATE.{name}", config)


async def _ensure_consumer(nc: Client, stream: str, config: dict[str, Any], update: bool) -> None:
    durable = config["durable_name"]
    if not update:
        try:
            await api_request(nc, f"$JS.API.CONSUMER.INFO.{stream}.{durable}")
            return
        except BusError as e:
            if f"code {CONSUMER_NOT_FOUND}" not in str(e):
                raise
    try:
        await _create(
            nc,
            f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
            {"stream_name": stream, "config": config, "action": "" if update else "create"},
        )
    except BusError as e:
        if f"code {CONSUMER_EXISTS}" not in str(e):
            raise


async def ensure_topology(
    nc: Client,
    *,
    ack_wait_s: float = DEFAULT_ACK_WAIT_S,
    worker_ttl_s: float = 15.0,
    replicas: int = 1,
    update: bool = False,
) -> None:
    """Create the streams and the work-queue consumers where they are missing. Safe to run
    concurrently from every service at start-up. With ``update`` (``conveyor migrate``),
    existing ones are brought to this configuration (e.g. a new ack wait). Raises
    LayoutError when the server holds a log of another layout (:func:`check_layout`)."""
    await check_layout(nc, upgrading=update)
    await _ensure_stream(nc, timers_config(replicas), update)
    await _ensure_stream(nc, event_log_config(replicas), update)
    await _ensure_stream(nc, workers_config(worker_ttl_s, replicas), update)
    await _ensure_stream(nc, types_config(replicas), update)
    await _ensure_stream(nc, schedules_config(replicas), update)
    for priority in names.PRIORITIES:
        await _ensure_consumer(nc, names.STREAM, run_consumer_config(priority, ack_wait_s), update)
    ticks = schedule_ticks_consumer_config(ack_wait_s)
    await _ensure_consumer(nc, names.SCHEDULES_STREAM, ticks, update)


async def queue_depth(nc: Client) -> dict[str, tuple[int, int]]:
    """(not yet delivered, delivered but not acked) run commands per priority."""
    depth: dict[str, tuple[int, int]] = {}
    js = nc.jetstream()
    for priority in names.PRIORITIES:
        try:
            info = await js.consumer_info(names.STREAM, names.run_consumer(priority))
        except Exception as e:
            raise BusUnavailable(f"consumer info: {e}") from e
        depth[priority] = (int(info.num_pending or 0), int(info.num_ack_pending or 0))
    return depth

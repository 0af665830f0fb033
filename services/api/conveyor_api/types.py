"""The job types the API accepts: what the workers publish (name, payload schema, defaults)
joined with which live workers run each. The API imports no handler: a payload is checked
against its type's JSON schema, and a type no live worker runs is refused (unless
``CONVEYOR_ACCEPT_UNSERVED_TYPES``), so a job is never queued where nothing will run it."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from conveyor_bus.directget import DirectGetter
from conveyor_bus.types import PublishedType, published_types
from conveyor_bus.workers import WorkerInfo, live_workers
from conveyor_events import UnknownJobType
from conveyor_events.jobtypes import PayloadSchema

MAX_AGE_S = 1.0
"""How old the view may be on the happy path (a type or worker it lacks is read again at
once, before a refusal)."""

ANY_OBJECT = PayloadSchema("(unserved)", {"type": "object"})
"""The check of a payload of a type nobody published yet (accepted unserved): an object,
within the depth limit; its worker checks the rest."""

HOW_TO_SERVE = (
    "workers run the built-in types, the types of the modules in their CONVEYOR_JOB_MODULES, "
    "and exec when their CONVEYOR_EXEC_ALLOW lists the programs they may run; "
    "CONVEYOR_ACCEPT_UNSERVED_TYPES=true on the api queues jobs of types no worker runs yet"
)


@dataclass(frozen=True)
class Resolved:
    """A submission's type as the API knows it."""

    payload: dict[str, Any]
    """Validated, top-level defaults filled in."""
    defaults: dict[str, Any]
    """The type's own defaults (max_attempts, timeout_s, priority), for what the submission
    leaves out."""


@dataclass(frozen=True)
class View:
    types: dict[str, PublishedType] = field(default_factory=dict)
    schemas: dict[str, PayloadSchema] = field(default_factory=dict)
    served: dict[str, list[str]] = field(default_factory=dict)
    """Type name → ids of the live workers that run it."""
    read_at: float = 0.0


def _retrieve(task: asyncio.Task[View]) -> None:
    """A background read's error is not news: the next submission reads again."""
    if not task.cancelled():
        task.exception()


class TypeCatalog:
    def __init__(
        self, getter: DirectGetter, worker_ttl_s: float, *, accept_unserved: bool = False
    ) -> None:
        self._getter = getter
        self._worker_ttl_s = worker_ttl_s
        self.accept_unserved = accept_unserved
        self._view = View()
        self._reading: asyncio.Task[View] | None = None
        self._compiled: dict[str, tuple[str, PayloadSchema]] = {}
        self._workers: dict[str, WorkerInfo] = {}
        """Every worker seen within the TTL, also one the server's memory stream forgot (a
        restarted nats-server knows no worker until each heartbeats again): a job of theirs
        is accepted, never refused for a moment in which nothing was wrong."""

    async def view(self, *, fresh: bool = False) -> View:
        """The last view, read again when older than ``MAX_AGE_S`` (in the background when
        there is one) or when ``fresh``. Concurrent callers share one read."""
        stale = time.monotonic() - self._view.read_at > MAX_AGE_S
        if fresh or stale:
            if self._reading is None or self._reading.done():
                self._reading = asyncio.create_task(self._read())
                self._reading.add_done_callback(_retrieve)
            if fresh or self._view.read_at == 0.0:
                return await asyncio.shield(self._reading)
        return self._view

    async def _read(self) -> View:
        published, workers = await asyncio.gather(
            published_types(self._getter), live_workers(self._getter)
        )
        now = datetime.now(UTC)
        for w in workers:
            seen = self._workers.get(w.id)
            if seen is None or seen.last_heartbeat_at <= w.last_heartbeat_at:
                self._workers[w.id] = w
        ttl = self._worker_ttl_s
        self._workers = {
            id_: w
            for id_, w in self._workers.items()
            if (now - w.last_heartbeat_at).total_seconds() <= ttl
        }
        served: dict[str, list[str]] = {}
        for w in self._workers.values():
            if not w.stopping:
                for name in w.types:
                    served.setdefault(name, []).append(w.id)
        schemas = {}
        for name, t in published.items():
            text = json.dumps(t.schema, sort_keys=True)
            known = self._compiled.get(name)
            if known is None or known[0] != text:
                try:
                    known = (text, PayloadSchema(name, t.schema))
                except ValueError:
                    continue  # a broken schema: the type cannot be validated, so not accepted
                self._compiled[name] = known
            schemas[name] = known[1]
        self._view = View(published, schemas, served, time.monotonic())
        return self._view

    async def resolve(self, job_type: str, payload: Any) -> Resolved:
        """Check a submission's type and payload; raises ``UnknownJobType`` (422 on
        ``type``) or ``InvalidPayload`` (422 naming the field)."""
        view = await self.view()
        if job_type not in view.served or job_type not in view.schemas:
            view = await self.view(fresh=True)  # a worker that just started, or a refusal
        schema = view.schemas.get(job_type)
        if job_type not in view.served and not self.accept_unserved:
            if schema is None:
                served = ", ".join(sorted(view.served)) or "none (no worker is running)"
                message = (
                    f"type: unknown job type {job_type!r}; types live workers run: {served}; "
                    f"{HOW_TO_SERVE}"
                )
            else:
                message = (
                    f"type: no live worker runs job type {job_type!r} (its workers are gone); "
                    f"{HOW_TO_SERVE}"
                )
            raise UnknownJobType(message, field="type")
        checked = (schema or ANY_OBJECT).validate(payload)
        published = view.types.get(job_type)
        return Resolved(checked, published.defaults if published is not None else {})

    async def listing(self) -> list[dict[str, Any]]:
        """``GET /types``: every published type, with the live workers that run it (none:
        its jobs are refused, or wait when accepted unserved)."""
        view = await self.view(fresh=True)
        items = [
            {
                "name": name,
                "schema": t.schema,
                "defaults": t.defaults,
                "description": t.description,
                "workers": sorted(view.served.get(name, [])),
            }
            for name, t in sorted(view.types.items())
        ]
        return items

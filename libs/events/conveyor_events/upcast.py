"""Old versions of an event, read as the current one: upcasters applied on read.

An event type changes in one of two ways (docs/how-to/evolve-an-event.md):

- **compatibly**: a field added with a default. Old events decode as they are (msgspec fills
  in the default) and new ones are read by old code (it ignores the field). The type's
  version stays; nothing is registered here.
- **incompatibly**: a field renamed, retyped, split, moved, or its meaning changed. The type's
  version goes up by one and an *upcaster* is registered: a function from the raw document
  of an event of version ``n`` (the JSON object as stored, ``data`` included) to one of
  version ``n + 1``. Events of a type at version 2 or later are written with a top-level
  ``"v": <version>``; an event without ``"v"`` is version 1.

The log is never rewritten. Every reader (projector, API, notifier, ``conveyor export``)
decodes through :func:`conveyor_events.events.decode_event`, which upcasts an old event in
memory, step by step, to the current version before the typed decode. While no type has
evolved (today: every event ever written is version 1), decoding is the one typed decode.

This module is pure: wire names and dicts, no event classes (events.py imports it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

Doc = dict[str, Any]
"""A stored event as a JSON object: ``{type, job_id, at, actor, data, v?}``."""
Upcaster = Callable[[Doc], Doc]
"""Version ``n`` of one event type's document to version ``n + 1`` (``v`` is set for it)."""

VERSION_KEY: Final = "v"
"""The top-level key of an event's version; absent on version 1."""


class UpcastError(ValueError):
    """A stored event's version is not one this code can read."""


class Upcasters:
    """Per event type, the chain of upcasters from version 1 to the current version."""

    def __init__(self) -> None:
        self._chains: dict[str, list[Upcaster]] = {}
        self.versions: dict[str, int] = {}
        """The current version of every type that has evolved (absent: version 1); one dict
        for the life of the registry, so a reader may keep a reference to it."""

    def version(self, event_type: str) -> int:
        """The version this code writes and reads ``event_type`` at."""
        return self.versions.get(event_type, 1)

    def register(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: the upcaster from ``from_version`` of ``event_type`` to the next; it
        makes the next version the current one. Versions are registered in order."""

        def add(step: Upcaster) -> Upcaster:
            chain = self._chains.setdefault(event_type, [])
            if from_version != len(chain) + 1:
                raise ValueError(
                    f"{event_type}: the next upcaster is from version {len(chain) + 1}, "
                    f"not {from_version}"
                )
            chain.append(step)
            self.versions[event_type] = len(chain) + 1
            return step

        return add

    @contextlib.contextmanager
    def extended(self, event_type: str, *steps: Upcaster) -> Iterator[None]:
        """For tests: ``steps`` registered after the type's chain while the block runs."""
        chain = self._chains.setdefault(event_type, [])
        before = len(chain)
        try:
            for step in steps:
                self.register(event_type, len(chain) + 1)(step)
            yield
        finally:
            del chain[before:]
            if chain:
                self.versions[event_type] = len(chain) + 1
            else:
                self.versions.pop(event_type, None)
                self._chains.pop(event_type, None)

    def version_of(self, doc: Mapping[str, Any]) -> int:
        """The version a stored event says it is (1 without ``v``)."""
        found = doc.get(VERSION_KEY, 1)
        if type(found) is not int or found < 1:
            raise UpcastError(f"`{VERSION_KEY}` must be an integer >= 1, got {found!r}")
        return found

    def is_old(self, doc: Mapping[str, Any]) -> bool:
        """Whether ``doc`` is an event of an older version of its type than this code's."""
        current = self.versions.get(str(doc.get("type")))
        return current is not None and self.version_of(doc) < current

    def upcast(self, doc: Doc) -> Doc:
        """``doc`` brought to its type's current version (unchanged when it is current, or
        newer: a newer version is read as it is, its unknown fields ignored). Raises
        UpcastError when an upcaster cannot read it."""
        event_type = str(doc.get("type"))
        chain = self._chains.get(event_type, [])
        version = self.version_of(doc)
        for n, step in enumerate(chain[version - 1 :], start=version):
            try:
                doc = step(doc)
            except Exception as e:
                raise UpcastError(f"{event_type} version {n} cannot be upcast: {e!r}") from e
            if not isinstance(doc, dict):
                raise UpcastError(f"the upcaster of {event_type} version {n} returned no object")
            doc[VERSION_KEY] = n + 1
        return doc


UPCASTERS: Final = Upcasters()
"""The registry every decode uses. No event type has changed incompatibly yet: empty.

A change registers its step here, beside the struct it changes, e.g.::

    @UPCASTERS.register("job.progressed", from_version=1)
    def _progress_as_percent(doc: Doc) -> Doc:
        data = doc["data"]
        data["progress"] = data.pop("fraction") * 100
        return doc
"""

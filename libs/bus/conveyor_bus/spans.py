"""OpenTelemetry spans, off unless the standard ``OTEL_*`` variables configure an exporter.

:func:`configure` runs once at a service's start. With nothing set it imports nothing of
OpenTelemetry and every :func:`span` is a plain W3C child of its parent
(:mod:`conveyor_bus.tracecontext`), as before. Spans are on when ``OTEL_TRACES_EXPORTER``
names ``otlp`` or ``console``, or, with it unset, when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set; ``OTEL_SDK_DISABLED=true`` or
``OTEL_TRACES_EXPORTER=none`` keep them off. The SDK (the ``otel`` extra) then exports each
span in batches (``OTEL_BSP_*``), OTLP over HTTP with protobuf (the exporter reads
``OTEL_EXPORTER_OTLP_*`` itself: endpoint, headers, timeout), sampled by ``OTEL_TRACES_SAMPLER``
(default: the parent's decision, else always), named by ``OTEL_SERVICE_NAME`` (default: the
service's, ``conveyor-api``…) and ``OTEL_RESOURCE_ATTRIBUTES``.

A span's ids are what the work carries on: :attr:`Span.traceparent` is the span's own
context, so a log line's ``trace_id`` is the span's trace, and the ``traceparent`` written
into a job's NATS headers makes the worker's run span a child of the api's publish span.

The tracer is process-wide (as OpenTelemetry's own provider is), set by :func:`configure`.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from conveyor_bus import tracecontext

log = logging.getLogger("conveyor.spans")

Kind = Literal["server", "producer", "consumer", "internal"]
Attribute = str | int | float | bool

EXPORTERS = ("otlp", "console")
"""The values of ``OTEL_TRACES_EXPORTER`` understood (besides ``none``)."""
PROTOCOL = "http/protobuf"
"""The one OTLP protocol of the ``otel`` extra (its exporter: opentelemetry-exporter-otlp-
proto-http); ``grpc`` would need another package."""

_tracer: Any = None
"""The process's tracer once :func:`configure` turned spans on (None: off)."""


class TracingConfigError(ValueError):
    """The ``OTEL_*`` variables ask for something Conveyor cannot do."""


def exporters(environ: Mapping[str, str]) -> list[str]:
    """The span exporters the environment asks for; empty: spans off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    raw = environ.get("OTEL_TRACES_EXPORTER", "")
    asked = [name.strip().lower() for name in raw.split(",") if name.strip()]
    if not asked:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        asked = ["otlp"] if endpoint else []
    if asked == ["none"]:
        return []
    unknown = [name for name in asked if name not in EXPORTERS]
    if unknown:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER={raw!r}: {', '.join(unknown)} is not an exporter of"
            f" Conveyor's; use {', '.join(EXPORTERS)} or none"
        )
    if "otlp" in asked:
        for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
            protocol = environ.get(name, "").strip()
            if protocol:
                if protocol != PROTOCOL:
                    raise TracingConfigError(
                        f"{name}={protocol!r}: Conveyor exports OTLP as {PROTOCOL} only"
                    )
                break
    return asked


def configure(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Turn spans on when the environment asks for an exporter (see the module); whether it
    did. Raises :class:`TracingConfigError` for a setting it cannot follow, or when spans are
    asked for and the OpenTelemetry SDK (the ``otel`` extra) is not installed."""
    global _tracer
    env = os.environ if environ is None else environ
    asked = exporters(env)
    if not asked:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError as e:
        raise TracingConfigError(
            f"the OTEL_* variables ask for spans ({', '.join(asked)}), but the OpenTelemetry"
            f" SDK is not installed: install {service}[otel]"
        ) from e
    named = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": service}
    provider = TracerProvider(resource=Resource.create(named))
    for name in asked:
        processor: SpanProcessor
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            processor = BatchSpanProcessor(OTLPSpanExporter())
        else:
            processor = BatchSpanProcessor(ConsoleSpanExporter())
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    atexit.register(provider.shutdown)  # what is still batched is sent on the way out
    _tracer = provider.get_tracer("conveyor")
    log.info("OpenTelemetry spans on: %s exporter", ", ".join(asked))
    return True


def enabled() -> bool:
    return _tracer is not None


class Span:
    """The work inside :func:`span`: its ``traceparent`` (None only when spans are off and
    there is no trace to follow), and the span itself while spans are on."""

    def __init__(self, traceparent: str | None, otel: Any = None) -> None:
        self.traceparent = traceparent
        self._otel = otel

    def rename(self, name: str) -> None:
        if self._otel is not None:
            self._otel.update_name(name)

    def set(self, key: str, value: Attribute | None) -> None:
        """An attribute (a None value is left out)."""
        if self._otel is not None and value is not None:
            self._otel.set_attribute(key, value)

    def fail(self, description: str) -> None:
        """Mark the span's outcome an error (an HTTP 5xx, say)."""
        if self._otel is not None:
            from opentelemetry.trace import Status, StatusCode

            self._otel.set_status(Status(StatusCode.ERROR, description))


@contextlib.contextmanager
def span(
    name: str,
    kind: Kind,
    *,
    remote: str | None = None,
    root: bool = False,
    attributes: Mapping[str, Attribute] | None = None,
) -> Iterator[Span]:
    """A span around the work in the block, made the current one.

    ``remote``: the ``traceparent`` this work was handed (a request's header, a message's),
    its parent; without one the parent is the current span, if any (a publish inside a
    request), or the span starts a trace. Spans off: the block gets a W3C child of
    ``remote`` (or, with ``root``, of nothing: a new trace), else no traceparent at all."""
    if _tracer is None:
        if remote is not None or root:
            yield Span(tracecontext.child(remote))
        else:
            yield Span(None)
        return
    from opentelemetry.context import Context
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent: Context | None = None
    if remote is not None and tracecontext.parse(remote) is not None:
        parent = TraceContextTextMapPropagator().extract({"traceparent": remote})
    elif remote is not None or root:
        parent = Context()  # an invalid or missing header from outside: a new trace
    with _tracer.start_as_current_span(
        name, context=parent, kind=SpanKind[kind.upper()], attributes=attributes
    ) as current:
        context = current.get_span_context()
        yield Span(
            f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}",
            current,
        )

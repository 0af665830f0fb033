"""Which OTEL_* settings turn spans on (conveyor_bus.spans.exporters), which ones Conveyor
refuses, and the trace context of a span while spans are off."""

from __future__ import annotations

import pytest

from conveyor_bus import spans, tracecontext

pytestmark = pytest.mark.unit

HEADER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp, console"}, ["otlp", "console"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, []),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, []),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            ["otlp"],
        ),
    ],
)
def test_what_turns_spans_on(env: dict[str, str], expected: list[str]) -> None:
    assert spans.exporters(env) == expected


@pytest.mark.parametrize(
    "env, message",
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "jaeger is not an exporter of Conveyor's"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL='grpc': Conveyor exports OTLP as http/protobuf only",
        ),
        (  # the traces' own protocol wins over the general one
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL='http/json'",
        ),
    ],
)
def test_a_setting_it_cannot_follow_is_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(spans.TracingConfigError, match=message.replace("(", r"\(")):
        spans.configure("conveyor-api", env)
    assert not spans.enabled()


def test_spans_off_the_work_gets_a_w3c_child_or_nothing() -> None:
    assert not spans.enabled()
    with spans.span("x", "consumer", remote=HEADER) as span:
        assert span.traceparent is not None
        assert tracecontext.parse(span.traceparent)[0] == HEADER.split("-")[1]  # type: ignore[index]
        span.set("k", 1)
        span.rename("y")
        span.fail("no-op while off")
    with spans.span("x", "consumer") as span:
        assert span.traceparent is None  # a message without a trace: none invented
    with spans.span("x", "server", root=True) as span:
        assert span.traceparent is not None  # a request without one starts a trace

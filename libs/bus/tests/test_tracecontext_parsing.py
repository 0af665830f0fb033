"""The trace context a write carries (its events' and its timer's headers), and the log
line formats."""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime, timedelta

from conveyor_bus import logs, tracecontext
from conveyor_bus.store import messages, timers
from conveyor_events import SubmitJob, Write, decide, names

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def submission(run_at: datetime | None = None) -> Write:
    command = SubmitJob(
        job_id="j1", now=NOW, actor="user:a", type="noop", payload={}, run_at=run_at
    )
    return Write("j1", decide(command, None), 0, "regular", "key-1", trace=TRACEPARENT)


def test_a_traced_write_carries_traceparent_beside_its_expected_sequence() -> None:
    (event, is_event), (record, _) = messages(submission())
    headers = event[2]
    assert is_event and headers[names.HEADER_TRACEPARENT] == TRACEPARENT
    assert headers[names.HEADER_EXPECTED_LAST_SUBJECT_SEQ] == "0"
    assert headers[names.HEADER_EXPECTED_SUBJECT] == names.job_subjects("j1")
    assert record[2] == {names.HEADER_EXPECTED_LAST_SUBJECT_SEQ: "0"}


def test_an_untraced_write_has_no_traceparent() -> None:
    write = submission()
    write.trace = None
    assert all(names.HEADER_TRACEPARENT not in m[2] for m, _ in messages(write))


def test_a_delayed_write_timer_carries_it_for_the_due() -> None:
    [timer] = timers(submission(run_at=NOW + timedelta(hours=1)))
    headers = timer.headers()
    assert headers[names.HEADER_TRACEPARENT] == TRACEPARENT
    assert headers[names.HEADER_SCHEDULE].startswith("@at ")


def test_a_child_keeps_the_trace_and_flags_with_a_new_parent() -> None:
    child = tracecontext.child(TRACEPARENT)
    assert tracecontext.parse(child) is not None
    _, trace, parent, flags = child.split("-")
    assert trace == "4bf92f3577b34da6a3ce929d0e0e4736" and flags == "01"
    assert parent != "00f067aa0ba902b7"


def test_an_invalid_traceparent_starts_a_new_trace() -> None:
    for bad in (None, "", "garbage", "01-" + TRACEPARENT[3:], f"00-{'0' * 32}-00f067aa0ba902b7-01"):
        assert tracecontext.parse(bad) is None
        assert tracecontext.parse(tracecontext.child(bad)) is not None


def test_a_json_line_carries_the_ids_that_are_set() -> None:
    record = logging.LogRecord("conveyor.worker", logging.INFO, "f", 1, "hi %s", ("x",), None)
    assert json.loads(logs.JsonFormatter().format(record)).keys() == {
        "ts",
        "level",
        "logger",
        "msg",
    }

    def inside() -> dict[str, object]:
        logs.job_id.set("j1")
        logs.attempt.set(2)
        logs.traceparent.set(TRACEPARENT)
        parsed: dict[str, object] = json.loads(logs.JsonFormatter().format(record))
        return parsed

    line = contextvars.copy_context().run(inside)
    assert line["msg"] == "hi x" and line["level"] == "info" and line["logger"] == "conveyor.worker"
    assert line["job_id"] == "j1" and line["attempt"] == 2
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert "request_id" not in line

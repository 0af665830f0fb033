"""The projector's NATS header parser answers exactly as nats-py's own."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from conveyor_bus.natsheaders import original, parse_header_lines

pytestmark = pytest.mark.unit

STORED = (
    b"Nats-Expected-Last-Subject-Sequence: 0\r\nNats-Batch-Id: 90941114e1be-0\r\n"
    b"Nats-Batch-Sequence: 1\r\nNats-Stream: CONVEYOR\r\n"
    b"Nats-Subject: conveyor.events.01M81XDFYRVMK1D5N2CRB5N1N6\r\nNats-Sequence: 1\r\n"
    b"Nats-Time-Stamp: 2026-11-23T15:18:55.217647821Z\r\nNats-Num-Pending: 120\r\n\r\n"
)

ODD = [
    STORED,
    b"A:B\r\nC :\t d \r\nno colon\r\n\xff\xfe: x\r\nk\x1ck: v\r\n\x1ck: v\r\n",
    b"K: \xe2\x82\xac \xff\r\n: empty name\r\nx y: z\r\nDup: 1\r\nDup: 2\r\n",
    b"",
    b"\r\n\r\n",
]


@pytest.mark.parametrize("raw", ODD)
def test_the_same_headers_as_nats_py(raw: bytes) -> None:
    assert parse_header_lines(raw) == original(raw)


def test_a_stored_event_s_headers() -> None:
    parsed = parse_header_lines(STORED)
    assert parsed["Nats-Sequence"] == "1"
    assert parsed["Nats-Subject"] == "conveyor.events.01M81XDFYRVMK1D5N2CRB5N1N6"
    assert len(parsed) == 8


line = st.one_of(
    st.binary(max_size=20),
    st.builds(
        lambda k, v: k + b":" + v,
        st.binary(max_size=10),
        st.binary(max_size=10),
    ),
)


@given(st.lists(line, max_size=6))
@example([b"\x1c:"])  # a name of whitespace that bytes.strip() keeps: not a header
@example([b":value"])  # an empty name: kept, as nats-py keeps it
def test_any_bytes_give_the_same_headers(lines: list[bytes]) -> None:
    raw = b"\r\n".join(lines)
    assert parse_header_lines(raw) == original(raw)

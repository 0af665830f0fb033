"""The direct getter's continuity check, on replies as the server chains them (the headers
are the pinned server's, see tests/integration/test_server_facts.py)."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.msg import Msg

from conveyor_bus.directget import DirectGetter, _Pending

pytestmark = pytest.mark.unit


def reply(seq: int, previous: int, pending: int) -> Msg:
    headers = {
        "Nats-Sequence": str(seq),
        "Nats-Subject": f"conveyor.job.J.e{seq}",
        "Nats-Last-Sequence": str(previous),
        "Nats-Num-Pending": str(pending),
    }
    return Msg(_client=None, subject="_INBOX.x.1", headers=headers, data=b"e")  # type: ignore[arg-type]


def end(last: int) -> Msg:
    headers = {"Status": "204", "Nats-Last-Sequence": str(last), "Nats-Num-Pending": "0"}
    return Msg(_client=None, subject="_INBOX.x.1", headers=headers)  # type: ignore[arg-type]


async def answer(*msgs: Msg) -> _Pending:
    getter = DirectGetter.__new__(DirectGetter)
    pending = _Pending(single=False)
    getter._pending = {"1": pending}
    for msg in msgs:
        await getter._on_msg(msg)
    await asyncio.wait_for(pending.done, 1)
    return pending


async def test_a_whole_chain_is_the_answer() -> None:
    got = await answer(reply(3, 0, 2), reply(5, 3, 1), reply(9, 5, 0), end(9))
    assert got.error is None
    assert [m.seq for m in got.msgs] == [3, 5, 9]


@pytest.mark.parametrize(
    "msgs",
    [
        pytest.param((reply(5, 3, 1), reply(9, 5, 0), end(9)), id="first-lost"),
        pytest.param((reply(3, 0, 2), reply(9, 5, 0), end(9)), id="middle-lost"),
        pytest.param((reply(3, 0, 2), reply(5, 3, 1), end(9)), id="last-lost"),
        pytest.param((end(9),), id="all-lost"),
    ],
)
async def test_a_lost_reply_breaks_the_chain(msgs: tuple[Msg, ...]) -> None:
    got = await answer(*msgs)
    assert got.error is not None and "lost messages" in got.error

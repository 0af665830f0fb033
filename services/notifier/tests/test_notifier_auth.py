"""The feed's token rules (auth.py): where a handshake may carry its token, which close code
refuses it, and the subprotocol echoed. The real notifier is in tests/e2e/test_auth.py."""

from __future__ import annotations

from typing import Any

import pytest
from websockets.datastructures import Headers
from websockets.typing import Subprotocol

from conveyor_bus.tokens import Principal, Role, Tokens
from conveyor_notifier.auth import TokenGate, presented, select_subprotocol

pytestmark = pytest.mark.unit

READ = "read-secret-0123456789ab"
GATE = TokenGate(Tokens([("dash", "read", READ)]))


@pytest.mark.parametrize(
    ("path", "headers", "token"),
    [
        ("/ws", {}, None),
        ("/ws?token=abc", {}, "abc"),
        ("/ws?since=3&token=abc", {}, "abc"),
        ("/ws", {"Authorization": "Bearer abc"}, "abc"),
        ("/ws", {"Sec-WebSocket-Protocol": "bearer.abc"}, "abc"),
        ("/ws", {"Sec-WebSocket-Protocol": "chat, bearer.abc"}, "abc"),
        ("/ws", {"Sec-WebSocket-Protocol": "bearer."}, None),
        ("/ws?token=q", {"Authorization": "Bearer h"}, "h"),
    ],
)
def test_a_token_comes_from_the_header_a_subprotocol_or_the_query(
    path: str, headers: dict[str, str], token: str | None
) -> None:
    assert presented(path, Headers(headers)) == token


def test_no_token_or_a_wrong_one_is_4401_a_right_one_the_principal() -> None:
    assert GATE.check("/ws", Headers())[0] == 4401  # type: ignore[index]
    assert GATE.check("/ws?token=nope-nope-nope-nope", Headers())[0] == 4401  # type: ignore[index]
    assert GATE.check(f"/ws?token={READ}", Headers()) == Principal("dash", Role.READ)
    assert READ not in str(GATE.check("/ws?token=x", Headers()))


def test_without_tokens_the_feed_is_open() -> None:
    assert isinstance(TokenGate(Tokens()).check("/ws", Headers()), Principal)


def test_the_bearer_subprotocol_is_selected_and_so_echoed() -> None:
    unused: Any = None
    offered = [Subprotocol("chat"), Subprotocol("bearer.abc")]
    assert select_subprotocol(unused, offered) == "bearer.abc"
    assert select_subprotocol(unused, [Subprotocol("chat")]) is None

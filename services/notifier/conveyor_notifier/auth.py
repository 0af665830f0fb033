"""Bearer tokens on the feed (SPEC §4): with tokens configured (``CONVEYOR_TOKENS``,
``CONVEYOR_TOKENS_FILE``, the API's; see :mod:`conveyor_bus.tokens`) a websocket must present
one, in one of three places:

- the header ``Authorization: Bearer <token>`` (clients that are not browsers: the CLI);
- the subprotocol ``bearer.<token>`` (``new WebSocket(url, ["bearer." + token])``: a browser
  cannot set headers on a websocket); the server selects it, so the handshake's answer echoes
  it, as a browser requires of a subprotocol it offered;
- the query ``token=<token>`` (SPEC §3.3), which ends up in proxies' access logs: prefer the
  other two.

Without one, or with one that is not configured, the websocket is accepted and closed at once
with 4401; with a token whose role may not watch, 4403 (``read`` and ``operate`` both may, so
today nothing is closed with 4403). The token is never logged, and neither is the query.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.typing import Subprotocol

from conveyor_bus.tokens import ANONYMOUS, Principal, Role, Tokens, bearer

SUBPROTOCOL = "bearer."
UNAUTHORIZED = 4401
FORBIDDEN = 4403
FEED_ROLE = Role.READ
"""What watching the feed needs."""


def select_subprotocol(
    _: ServerConnection, subprotocols: Sequence[Subprotocol]
) -> Subprotocol | None:
    """The ``bearer.<token>`` subprotocol a client offered, selected; else none."""
    return next((s for s in subprotocols if s.startswith(SUBPROTOCOL)), None)


def presented(path: str, headers: Headers) -> str | None:
    """The token a handshake presents (header, then subprotocol, then query), if any."""
    token = bearer(headers.get("Authorization"))
    if token is not None:
        return token
    for value in headers.get_all("Sec-WebSocket-Protocol"):
        for offered in value.split(","):
            offered = offered.strip()
            if offered.startswith(SUBPROTOCOL) and len(offered) > len(SUBPROTOCOL):
                return offered[len(SUBPROTOCOL) :]
    values = parse_qs(urlsplit(path).query).get("token")
    return values[-1] if values else None


class TokenGate:
    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens

    def check(self, path: str, headers: Headers) -> tuple[int, str] | Principal:
        """The principal of a handshake, or the close code and reason that refuse it."""
        if not self.tokens.enabled:
            return Principal(ANONYMOUS, Role.OPERATE)
        token = presented(path, headers)
        if token is None:
            return (
                UNAUTHORIZED,
                "a token is needed: Authorization: Bearer, subprotocol bearer.<token> or ?token=",
            )
        found = self.tokens.lookup(token)
        if found is None:
            return UNAUTHORIZED, "the token is not valid here (not one of the configured tokens)"
        if not found.role.permits(FEED_ROLE):
            return FORBIDDEN, f"token {found.name!r} (role {found.role.value}) may not watch"
        return found

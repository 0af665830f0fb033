"""URLs fit to print: where a server is and who logs in, never the secret to get in."""

from __future__ import annotations

import re

MASK = "***"
_TOKEN_SCHEMES = frozenset({"nats", "tls", "ws", "wss"})
"""Schemes whose userinfo without a colon is a token, a secret (PostgreSQL's is a user)."""
_NEXT_URL = re.compile(r",(?=[A-Za-z][A-Za-z0-9+.-]*://)")


def redact(url: str) -> str:
    """``url``, or a comma list of URLs, with the password in the userinfo, a NATS token and
    a ``password`` query parameter replaced by ``***``. Anything that is not a URL is
    returned as it is."""
    return ",".join(_one(part) for part in _NEXT_URL.split(url))


def _one(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    head, question, query = rest.partition("?")
    userinfo, at, where = head.rpartition("@")  # a password may hold an unescaped "@"
    if at:
        user, colon, _ = userinfo.partition(":")
        if colon:
            userinfo = f"{user}:{MASK}"
        elif scheme.lower() in _TOKEN_SCHEMES:
            userinfo = MASK
        head = f"{userinfo}@{where}"
    if question:
        query = "&".join(_masked_parameter(p) for p in query.split("&"))
    return f"{scheme}://{head}{question}{query}"


def _masked_parameter(parameter: str) -> str:
    name, equals, _ = parameter.partition("=")
    return f"{name}={MASK}" if equals and name.lower() == "password" else parameter

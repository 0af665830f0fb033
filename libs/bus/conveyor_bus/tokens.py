"""Bearer tokens of the API and the feed: who holds one (its name, the principal), what it may
do (its role), and the constant-time lookup of a presented secret.

Tokens are configured by ``CONVEYOR_TOKENS`` (``name:role:secret`` items, comma-separated)
and/or ``CONVEYOR_TOKENS_FILE`` (a mounted secrets file, one ``name role secret`` per line,
``#`` comments and blank lines ignored); both together are one set. No token configured: auth
is off, and every request is the principal ``anonymous``.

Only the SHA-256 digest of each secret is kept; a presented secret is hashed and compared with
``hmac.compare_digest`` to every configured digest, all of them every time, so neither the
time taken nor an early exit says which token (or how much of one) matched. Nothing here puts
a secret in a message: errors name the token's name or its line, never its secret.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ANONYMOUS = "anonymous"
"""The principal of every request while auth is off."""
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
SECRET = re.compile(r"[A-Za-z0-9._~-]{16,512}")
"""URL-safe characters (``secrets.token_urlsafe``), valid in a query, a header and a
websocket subprotocol; at least 16 of them."""


class Role(enum.StrEnum):
    READ = "read"
    """List, show and watch: every GET, and the feed."""
    OPERATE = "operate"
    """Everything ``read`` may, and every write: submit, stop, restart, delete, schedules."""

    def permits(self, needed: Role) -> bool:
        return self is Role.OPERATE or needed is Role.READ


class TokenError(ValueError):
    """The configured tokens are not valid."""


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal
    digest: bytes


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


class Tokens:
    """The configured tokens; empty means auth is off."""

    def __init__(self, items: Iterable[tuple[str, str, str]] = ()) -> None:
        entries: list[_Entry] = []
        names: set[str] = set()
        digests: set[bytes] = set()
        for name, role, secret in items:
            where = f"token {name[:64]!r}"
            if not NAME.fullmatch(name):
                raise TokenError(
                    f"{where}: a name is 1-64 letters, digits, '_', '.', '@' or '-', "
                    "starting with a letter or digit"
                )
            if role not in {r.value for r in Role}:
                raise TokenError(f"{where}: role {role[:20]!r} is not one of read, operate")
            if not SECRET.fullmatch(secret):
                raise TokenError(
                    f"{where}: its secret must be 16-512 URL-safe characters (A-Z a-z 0-9 . _ ~ -),"
                    ' e.g. from python -c "import secrets; print(secrets.token_urlsafe(32))"'
                )
            if name in names:
                raise TokenError(f"{where} is configured twice")
            digest = _digest(secret)
            if digest in digests:
                raise TokenError(f"{where} has the same secret as another token")
            names.add(name)
            digests.add(digest)
            entries.append(_Entry(Principal(name, Role(role)), digest))
        self._entries = tuple(entries)

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    @property
    def names(self) -> list[str]:
        return [e.principal.name for e in self._entries]

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, secret: str | None) -> Principal | None:
        """The principal whose secret this is, or None. Compares with every token, always."""
        if secret is None:
            return None
        presented = _digest(secret)
        found: Principal | None = None
        for entry in self._entries:
            if hmac.compare_digest(presented, entry.digest):
                found = entry.principal
        return found


def parse_list(value: str) -> list[tuple[str, str, str]]:
    """``name:role:secret,name:role:secret`` (blanks around items ignored)."""
    items = []
    for n, item in enumerate(value.split(","), 1):
        item = item.strip()
        if not item:
            continue
        name, _, rest = item.partition(":")
        role, colon, secret = rest.partition(":")
        if not colon:
            # not its text: a malformed item may be all secret
            raise TokenError(f"CONVEYOR_TOKENS item {n} is not name:role:secret")
        items.append((name.strip(), role.strip(), secret.strip()))
    return items


def parse_file(text: str, source: str = "CONVEYOR_TOKENS_FILE") -> list[tuple[str, str, str]]:
    """One ``name role secret`` per line; ``#`` starts a comment line; blank lines skipped."""
    items = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 3:
            raise TokenError(
                f"{source} line {n} has {len(fields)} fields; each line is: name role secret"
            )
        items.append((fields[0], fields[1], fields[2]))
    return items


class TokenSettings(BaseSettings):
    """The tokens' settings, shared by the API and the notifier."""

    model_config = SettingsConfigDict(env_prefix="CONVEYOR_", extra="ignore")

    tokens: str = Field("", repr=False)
    """``name:role:secret`` items, comma-separated; role ``read`` or ``operate``."""
    tokens_file: Path | None = None
    """A file of tokens (a mounted secret): one ``name role secret`` per line."""

    def load_tokens(self) -> Tokens:
        """The configured tokens (read from the file now); raises TokenError naming what is
        wrong, never a secret."""
        items = parse_list(self.tokens)
        if self.tokens_file is not None:
            try:
                text = self.tokens_file.read_text()
            except OSError as e:
                raise TokenError(
                    f"CONVEYOR_TOKENS_FILE {str(self.tokens_file)!r}: {e.strerror}"
                ) from None
            items += parse_file(text)
        return Tokens(items)


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()

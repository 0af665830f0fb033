"""Job ids: ULIDs (48-bit millisecond time + 80 random bits, Crockford base32, 26 chars).
Opaque, URL-safe, valid as a NATS subject token, and sortable by creation time."""

from __future__ import annotations

import hashlib
import os
import re
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
JOB_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


def new_job_id(now_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return _encode((ms << 80) | int.from_bytes(os.urandom(10), "big"))


def derived_job_id(time_ms: int, key: str) -> str:
    """The id of a job that must be created once only, whoever creates it: a ULID whose time
    part is ``time_ms`` and whose other 80 bits are the first of SHA-256(``key``), so every
    derivation from the same time and key is the same id (a second submission of it is
    refused by the log)."""
    digest = hashlib.sha256(key.encode()).digest()
    return _encode((time_ms << 80) | int.from_bytes(digest[:10], "big"))


def _encode(value: int) -> str:
    """128 bits as 26 Crockford base32 characters."""
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_job_id(text: str) -> bool:
    return JOB_ID.fullmatch(text) is not None

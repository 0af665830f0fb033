"""Who may log in to the embedded servers, and the owner-only files that keep it (ADR 0011)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Login:
    user: str
    password: str

    @classmethod
    def new(cls, user: str) -> Login:
        return cls(user, secrets.token_urlsafe(24))

    @property
    def userinfo(self) -> str:
        return f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"


def nats_url(login: Login, port: int) -> str:
    return f"nats://{login.userinfo}@{LOOPBACK}:{port}"


def postgres_url(login: Login, port: int, database: str = "conveyor") -> str:
    return f"postgresql://{login.userinfo}@{LOOPBACK}:{port}/{database}"


def private_dir(path: Path) -> Path:
    """``path``, a directory only its owner may enter (made, or narrowed, to 0700)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, text: str, owner: tuple[int, int] | None = None) -> None:
    """Replace ``path`` by ``text`` in a file only its owner (``owner``'s uid and gid, else
    ours) may read (0600). A symlink at ``path``, or at the file written first beside it, is
    replaced, never followed: as root we write in directories ``pgserver`` owns."""
    part = path.with_name(f".{path.name}.part")
    part.unlink(missing_ok=True)
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        if owner is not None:
            os.fchown(out.fileno(), *owner)
        out.write(text)
    part.replace(path)

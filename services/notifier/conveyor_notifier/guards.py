"""Who may open the feed, and how many at once (issue 10, defects 2 and 7).

- **Origin.** A browser sends the page's ``Origin`` on every websocket handshake and lets
  any page open a websocket to any address: without a check, a page on another site that the
  user visits reads the whole feed (every payload and traceback) from ``ws://127.0.0.1:8001``,
  and a rebound DNS name does the same. Only the dashboard's own origin (``api_url``) and
  ``allowed_origins`` are accepted; any other is refused with 403 before the handshake
  completes. A handshake without ``Origin`` is not a browser's (the CLI, the benchmark, a
  script): it is accepted, as it could send any ``Origin`` it liked anyway.
- **Counts.** At most ``max_clients`` open websockets, and ``max_clients_per_address`` from
  one client address; past either a new one is closed with 1013, which tells the dashboard to
  come back later.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

ANY = "*"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
"""Names of this machine: a page opened under one of them has that one as its origin."""
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(scheme: str, host: str, port: int | None) -> str:
    netloc = f"[{host}]" if ":" in host else host
    return f"{scheme}://{netloc}" + ("" if port in (None, _DEFAULT_PORTS[scheme]) else f":{port}")


def _parts(value: str, path_allowed: bool) -> tuple[str, str, int | None]:
    problem = ValueError(
        f"{value[:200]!r} is not an origin (scheme://host[:port], e.g. https://a.example)"
    )
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError as e:
        raise problem from e
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or "@" in parts.netloc:
        raise problem
    if not path_allowed and (parts.path not in ("", "/") or parts.query or parts.fragment):
        raise problem
    return scheme, host.rstrip("."), port


def normal_origin(value: str, *, path_allowed: bool = False) -> str:
    """``value`` as an origin, ``scheme://host[:port]``: lower case, without the scheme's
    default port (how a browser writes it). With ``path_allowed``, ``value`` may be a URL
    (the origin is its first part). Raises ValueError naming the value."""
    return _origin(*_parts(value, path_allowed))


def dashboard_origins(api_url: str) -> list[str]:
    """The origins of the dashboard served at ``api_url``: on a loopback host, the same
    scheme and port under each loopback name (the page may be opened under any of them)."""
    scheme, host, port = _parts(api_url, path_allowed=True)
    hosts = LOOPBACK if host in LOOPBACK else (host,)
    return [_origin(scheme, h, port) for h in hosts]


class OriginPolicy:
    def __init__(self, api_url: str, allowed: list[str]) -> None:
        self.any = ANY in allowed
        listed = [*dashboard_origins(api_url), *allowed]
        self.origins = tuple(dict.fromkeys(o for o in listed if o != ANY))

    def refusal(self, values: list[str]) -> str | None:
        """Why a handshake with these ``Origin`` headers may not open the feed, or None."""
        if not values:
            return None  # not a browser
        if len(values) > 1:
            return "the handshake has more than one Origin header"
        if self.any:
            return None
        try:
            origin = normal_origin(values[0])
        except ValueError:
            origin = None  # "null" (a sandboxed frame, a file), or not an origin at all
        if origin in self.origins:
            return None
        return (
            f"Origin {values[0][:200]!r} may not open the feed; allowed: "
            f"{', '.join(self.origins)} (settings api_url and allowed_origins, env "
            "CONVEYOR_API_URL and CONVEYOR_ALLOWED_ORIGINS)"
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    """The metric label."""
    detail: str
    """The close frame's reason (at most 123 bytes)."""


class Admission:
    """Counts the open websockets, in total and per client address."""

    def __init__(self, max_clients: int, max_per_address: int) -> None:
        self.max_clients = max_clients
        self.max_per_address = max_per_address
        """0: no cap per address."""
        self.total = 0
        self.by_address: dict[str, int] = {}

    def enter(self, address: str) -> Refusal | None:
        """Count one more websocket from ``address``, or say why it may not be opened (it is
        then not counted)."""
        if self.total >= self.max_clients:
            return Refusal(
                "max_clients",
                f"busy: {self.total} clients are connected (max_clients); try again later",
            )
        mine = self.by_address.get(address, 0)
        if self.max_per_address and mine >= self.max_per_address:
            return Refusal(
                "max_clients_per_address",
                f"busy: {mine} clients from your address (max_clients_per_address); "
                "try again later",
            )
        self.total += 1
        self.by_address[address] = mine + 1
        return None

    def leave(self, address: str) -> None:
        self.total -= 1
        left = self.by_address[address] - 1
        if left:
            self.by_address[address] = left
        else:
            del self.by_address[address]

"""A 3-node nats-server cluster on the loopback, for fault tests of a clustered JetStream.

Three processes, each with its own client port, route port, server name and store (file
store, ``sync_interval: always``), routes to the other two, one client login shared by all
(the services' ``NATS_URL`` lists the three URLs, comma-separated). Nodes are killed and
restarted by name, on the same ports and stores; a stream's leader and the state of its
replicas are read from the JetStream API (``$JS.API.STREAM.INFO.<stream>``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import signal
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import nats

from conveyor_cli.dev.embedded import Cluster, NatsServer, free_port
from conveyor_cli.logins import Login

T = TypeVar("T")

PROBE_STREAM = "CLUSTER_PROBE"


@dataclass(frozen=True, slots=True)
class StreamCluster:
    """Who leads a stream and how its replicas (the followers) are, as the leader says."""

    leader: str | None
    leader_since: datetime | None
    """When the leader was elected (the server's clock: this machine's, on the loopback)."""
    replicas: dict[str, dict[str, Any]]
    """Per follower: ``current``, ``offline``, ``lag``, ``active`` (the API's fields)."""

    def healthy(self, size: int) -> bool:
        """A leader, and every other node a current, online follower."""
        followers = [r for r in self.replicas.values() if r.get("current") and not r.get("offline")]
        return self.leader is not None and len(followers) == size - 1


class NatsCluster:
    def __init__(self, root: Path, size: int = 3, name: str = "conveyor") -> None:
        login = Login.new("conveyor")
        routes = Login.new("route")
        client_ports = [free_port() for _ in range(size)]
        route_ports = [free_port() for _ in range(size)]
        self.nodes: dict[str, NatsServer] = {}
        for i in range(size):
            others = tuple(p for j, p in enumerate(route_ports) if j != i)
            node = f"n{i + 1}"
            self.nodes[node] = NatsServer(
                root / node,
                client_ports[i],
                login=login,
                server_name=node,
                cluster=Cluster(name, route_ports[i], others, routes),
            )

    @property
    def url(self) -> str:
        """Every node's URL, comma-separated: what ``NATS_URL`` is set to."""
        return ",".join(node.url for node in self.nodes.values())

    def running(self) -> list[str]:
        return [n for n, s in self.nodes.items() if s.proc is not None and s.proc.poll() is None]

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> NatsCluster:
        for node in self.nodes.values():
            node.start()
        self.wait_replicated(timeout)
        return self

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def kill(self, node: str) -> None:
        """SIGKILL: no goodbye to the other nodes, nothing flushed but what was synced."""
        self.nodes[node].stop(signal.SIGKILL)

    def restart(self, node: str) -> None:
        """The node again, on its ports and its store."""
        self.nodes[node].start()

    def wait_replicated(self, timeout: float) -> None:
        """Until the meta group has a leader and knows every node: a stream of as many
        replicas as there are nodes can be created (a probe stream, deleted again)."""
        size = len(self.nodes)
        config = {"name": PROBE_STREAM, "subjects": [], "storage": "memory"}

        def probe() -> bool:
            made = self.request(
                f"$JS.API.STREAM.CREATE.{PROBE_STREAM}", {**config, "num_replicas": size}
            )
            if made is None or "error" in made:
                return False
            self.request(f"$JS.API.STREAM.DELETE.{PROBE_STREAM}", {})
            return True

        poll(probe, timeout, f"the cluster never took a stream of {size} replicas")

    # -- what the JetStream API says --------------------------------------------------------

    def request(self, subject: str, body: dict[str, Any], timeout: float = 2.0) -> Any:
        """A JetStream API request through any running node; None when none answered."""
        urls = [self.nodes[n].url for n in self.running()]
        if not urls:
            return None

        async def ask() -> Any:
            nc = await nats.connect(
                servers=urls, allow_reconnect=False, connect_timeout=2, error_cb=_quiet
            )
            try:
                reply = await nc.request(subject, json.dumps(body).encode(), timeout=timeout)
                return json.loads(reply.data)
            finally:
                await nc.close()

        try:
            return _run(ask())
        except Exception:  # no node answered in time: an election, a node starting
            return None

    def stream(self, stream: str) -> StreamCluster | None:
        """The stream's leader and followers, or None while the API does not answer."""
        info = self.request(f"$JS.API.STREAM.INFO.{stream}", {})
        if info is None or "error" in info:
            return None
        cluster = info.get("cluster", {})
        replicas = {r["name"]: r for r in cluster.get("replicas", [])}
        since = cluster.get("leader_since")
        elected = datetime.fromisoformat(since) if since else None
        return StreamCluster(cluster.get("leader") or None, elected, replicas)

    def leader(self, stream: str, timeout: float = 30.0, *, other_than: str = "") -> StreamCluster:
        """The stream's state once it has a leader (and it is not ``other_than``)."""
        found: list[StreamCluster] = []

        def elected() -> bool:
            info = self.stream(stream)
            if info is None or info.leader is None or info.leader == other_than:
                return False
            found.append(info)
            return True

        poll(elected, timeout, f"{stream} elected no leader (other than {other_than!r})")
        return found[-1]

    def wait_healthy(self, stream: str, timeout: float = 30.0) -> None:
        """Until the stream has a leader and every other node is a current follower."""
        size = len(self.nodes)

        def healthy() -> bool:
            info = self.stream(stream)
            return info is not None and info.healthy(size)

        poll(healthy, timeout, f"{stream} never had all {size} replicas current")


async def _quiet(e: Exception) -> None:
    """nats-py's error callback: a node refusing the connection is expected here."""


def poll(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> float:
    """Until ``predicate()``; the time it took. AssertionError(``what``) on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    raise AssertionError(f"{what} (within {timeout}s)")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even where a loop is running."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()

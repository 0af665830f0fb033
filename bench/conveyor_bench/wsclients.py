"""Websocket clients for the fan-out scenario, run as a process of their own:
``python -m conveyor_bench.wsclients WS_URL --sinks N --probes M``.

Both kinds are raw asyncio protocols that do the websocket handshake and then read every byte
the notifier sends. A *sink* only counts the bytes (so a thousand of them cost the client side
little; every byte still crosses the socket). A *probe* parses every frame: the event's
``seq`` (checked against what was published) and its ``at``, from which it records receive
time minus event time; it answers pings and records a close code.

Protocol with the parent, one JSON line each way: the process prints ``{"ready": n}`` once every
client is connected, then reads ``{"last_seq": s, "bytes": b, "timeout": t}`` from stdin and
waits until each probe has seen ``seq`` ``s`` / each sink has ``b`` bytes (or ``t`` seconds),
writes its report to the ``--report`` file, says so and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

CONNECTING_AT_ONCE = 50
PING, PONG, CLOSE, TEXT = 0x9, 0xA, 0x8, 0x1


class _Head(msgspec.Struct):
    seq: int
    at: datetime


_head = msgspec.json.Decoder(_Head)


class _Client(asyncio.Protocol):
    """The handshake; then :meth:`on_data` with each chunk of the server's frames."""

    def __init__(self, host: str, port: int, path: str) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.head = b""
        self.open: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.bytes = 0
        self.reached: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done once the client has what the parent says was sent (or lost its connection)."""
        self.goal: int | None = None

    def set_goal(self, goal: int) -> None:
        self.goal = goal
        self.check_goal()

    def check_goal(self) -> None:
        if self.goal is not None and self.progress() >= self.goal and not self.reached.done():
            self.reached.set_result(None)

    def progress(self) -> int:
        return self.bytes

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.open.done():
            self.on_data(data)
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            return
        if not self.head.startswith(b"HTTP/1.1 101"):
            self.open.set_exception(RuntimeError(self.head[:200].decode(errors="replace")))
            return
        self.open.set_result(None)
        rest, self.head = self.head[end + 4 :], b""
        if rest:
            self.on_data(rest)

    def on_data(self, data: bytes) -> None:
        self.bytes += len(data)
        self.check_goal()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.reached.done():
            self.reached.set_result(None)
        if not self.open.done():
            self.open.set_exception(ConnectionError(f"closed during the handshake: {exc}"))


class Sink(_Client):
    """Counts the bytes it receives, nothing else."""


class Probe(_Client):
    """Parses every frame; records each event's seq and its delivery latency."""

    def __init__(self, host: str, port: int, path: str) -> None:
        super().__init__(host, port, path)
        self.buffer = bytearray()
        self.seqs: list[int] = []
        self.latencies_ms: list[float] = []
        self.close_code: int | None = None
        self.bad_frames = 0

    def progress(self) -> int:
        return self.seqs[-1] if self.seqs else 0

    def on_data(self, data: bytes) -> None:
        received = time.time()
        self.bytes += len(data)
        buf = self.buffer
        buf += data
        i, end = 0, len(buf)
        while end - i >= 2:
            opcode, length, start = buf[i] & 0x0F, buf[i + 1] & 0x7F, i + 2
            if length == 126:
                length, start = int.from_bytes(buf[i + 2 : i + 4], "big"), i + 4
            elif length == 127:
                length, start = int.from_bytes(buf[i + 2 : i + 10], "big"), i + 10
            if start + length > end:
                break
            payload = bytes(buf[start : start + length])
            i = start + length
            if opcode == TEXT:
                try:
                    head = _head.decode(payload)
                except msgspec.DecodeError:
                    self.bad_frames += 1
                    continue
                self.seqs.append(head.seq)
                self.latencies_ms.append((received - head.at.timestamp()) * 1000)
            elif opcode == PING and self.transport is not None:  # masked with a zero key
                self.transport.write(bytes([0x80 | PONG, 0x80 | length, 0, 0, 0, 0]) + payload)
            elif opcode == CLOSE:
                self.close_code = int.from_bytes(payload[:2], "big") if payload else 1005
            else:
                self.bad_frames += 1
        del buf[:i]
        self.check_goal()


async def _connect(url: str, sinks: int, probes: int) -> tuple[list[Sink], list[Probe]]:
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECTING_AT_ONCE)

    async def one(client: _Client) -> None:
        async with gate:
            await loop.create_connection(lambda: client, host, port)
            await client.open

    made_probes = [Probe(host, port, path) for _ in range(probes)]
    made_sinks = [Sink(host, port, path) for _ in range(sinks)]
    async with asyncio.timeout(120):
        await asyncio.gather(*(one(c) for c in [*made_probes, *made_sinks]))
    return made_sinks, made_probes


async def main(url: str, sinks: int, probes: int) -> dict[str, Any]:
    made_sinks, made_probes = await _connect(url, sinks, probes)
    print(json.dumps({"ready": len(made_sinks) + len(made_probes)}), flush=True)
    loop = asyncio.get_running_loop()
    order = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    began = time.monotonic()
    for probe in made_probes:
        probe.set_goal(order["last_seq"])
    for sink in made_sinks:
        sink.set_goal(order["bytes"])
    everyone = [c.reached for c in [*made_sinks, *made_probes]]
    await asyncio.wait(everyone, timeout=float(order["timeout"]))
    report = {
        "waited_s": round(time.monotonic() - began, 3),
        "sink_bytes": [s.bytes for s in made_sinks],
        "sinks_lost": sum(s.lost for s in made_sinks),
        "probes": [
            {
                "seqs": p.seqs,
                "latencies_ms": [round(x, 3) for x in p.latencies_ms],
                "bytes": p.bytes,
                "lost": p.lost,
                "close_code": p.close_code,
                "bad_frames": p.bad_frames,
            }
            for p in made_probes
        ],
    }
    for client in [*made_sinks, *made_probes]:
        if client.transport is not None:
            client.transport.abort()
    return report


def _cli() -> None:
    parser = argparse.ArgumentParser(prog="conveyor_bench.wsclients", description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--sinks", type=int, default=0)
    parser.add_argument("--probes", type=int, default=0)
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        report = asyncio.run(main(args.url, args.sinks, args.probes))
    else:
        report = uvloop.run(main(args.url, args.sinks, args.probes))
    args.report.write_text(json.dumps(report))
    print(json.dumps({"report": str(args.report)}), flush=True)


if __name__ == "__main__":
    _cli()

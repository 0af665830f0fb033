"""The servers and worker processes the peers benchmark starts, and the guards that bound them.

Every process is started in its own session (so its children share its process group), listens
on 127.0.0.1 only, logs to a file in the run's temporary directory, and is stopped by
`Processes.close()`: SIGTERM to the group, then SIGKILL to whatever is left.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

BIN_DIR = Path(sys.executable).parent
STOP_GRACE_S = 10.0
READY_TIMEOUT_S = 30.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """The peers benchmark could not run."""


class ScenarioTimeout(BenchError):
    """A scenario ran past its hard time limit."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_binary(name: str) -> str:
    """The path of a console script installed beside this interpreter (the peers env)."""
    path = BIN_DIR / name
    if not path.exists():
        raise BenchError(f"{path} is missing: run bench/peers/install.sh, then use its python")
    return str(path)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for error messages."""
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


class Processes:
    """Starts child processes, each in its own session, and stops all of them on close()."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._children: list[Child] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        log = self._log_dir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        child = Child(name, process, log)
        self._children.append(child)
        return child

    def check_alive(self, child: Child) -> None:
        if child.process.poll() is not None:
            raise BenchError(
                f"{child.name} exited with status {child.process.returncode}:\n{tail(child.log)}"
            )

    def stop(self, child: Child) -> None:
        """Stops the child's whole process group: SIGTERM, a grace period, then SIGKILL."""
        group = child.process.pid
        _signal_group(group, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            child.process.wait(STOP_GRACE_S)
        _signal_group(group, signal.SIGKILL)
        child.process.wait()
        if child in self._children:
            self._children.remove(child)

    def close(self) -> None:
        for child in reversed(list(self._children)):
            self.stop(child)


def _signal_group(group: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(group, signum)


def group_cpu_seconds(group: int) -> float:
    """User + system CPU seconds used so far by the live processes of a process group."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == group:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine (all cores, all processes) since boot."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def wait_for_port(port: int, child: Child, processes: Processes) -> None:
    """Waits until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        processes.check_alive(child)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{child.name} did not listen on port {port} within {READY_TIMEOUT_S:.0f} s")


def version_of(argv: Sequence[str]) -> str:
    """The first line a server prints for its --version flag."""
    out = subprocess.run(list(argv), capture_output=True, text=True, check=True, timeout=10)
    return (out.stdout or out.stderr).strip().splitlines()[0]


@dataclass(frozen=True)
class Server:
    url: str
    version: str
    pid: int


def start_redis(processes: Processes, work_dir: Path) -> Server:
    """One redis-server on a free port: no RDB snapshots and no AOF (nothing to persist)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError("redis-server is not on PATH: run bench/peers/install.sh")
    port = free_port()
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(work_dir)]
    argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""]
    child = processes.start("redis-server", argv)
    wait_for_port(port, child, processes)
    return Server(f"redis://127.0.0.1:{port}", version_of([binary, "--version"]), child.process.pid)


def start_nats(processes: Processes, work_dir: Path) -> Server:
    """One nats-server with JetStream, file store in work_dir, default sync settings."""
    binary = env_binary("nats-server")
    port = free_port()
    store = work_dir / "jetstream"
    argv = [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)]
    child = processes.start("nats-server", argv)
    wait_for_port(port, child, processes)
    return Server(f"nats://127.0.0.1:{port}", version_of([binary, "--version"]), child.process.pid)


@contextmanager
def hard_timeout(seconds: float, what: str) -> Iterator[None]:
    """Raises ScenarioTimeout in the main thread when the block runs longer than `seconds`.

    The alarm repeats every second until the block exits, since code that swallows exceptions
    (such as a __del__ running when the first alarm fires) can swallow one of them.
    """

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise ScenarioTimeout(f"{what} did not finish within its hard limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def wait_until(count: Callable[[], int], target: int, interval_s: float) -> float:
    """Polls count() every interval_s until it reaches target; the perf_counter it was seen."""
    while True:
        seen = count()
        if seen >= target:
            check_count(seen, target)
            return time.perf_counter()
        time.sleep(interval_s)


def check_count(seen: int, target: int) -> None:
    if seen != target:
        raise BenchError(f"the result store holds {seen} results for {target} jobs")

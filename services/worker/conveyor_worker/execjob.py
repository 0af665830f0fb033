"""The built-in ``exec`` job type: a program that the worker's allow-list
(``CONVEYOR_EXEC_ALLOW``, path globs matched against its real path) lets run, never through a
shell, in a session and process group of its own, with a minimal environment (never the
worker's credentials). stdout lines ``PROGRESS <0-100> [message]`` report progress; exit 0
completes with the last other stdout line (JSON when it parses); another code or a signal
fails with the last 4 KiB of stderr. A stop, timeout or shutdown (the handler cancelled) sends
SIGTERM to the group, then SIGKILL after ``grace_s``; when the program ends by itself, what it
left in its group is killed at once. See docs/how-to/run-programs.md, also for the limits."""

from __future__ import annotations

import asyncio
import fnmatch
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Awaitable, Sequence
from typing import Annotated, Any

import msgspec

import conveyor
from conveyor_worker.execoutput import Output

MAX_ARGS, MAX_TEXT, MAX_ENV, MAX_PATH = 1_024, 32_768, 256, 4_096  # MAX_TEXT: characters
PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")  # of the worker's, those set
DRAIN_S = 2.0  # for the output to close once the group is dead
KILL_WAIT_S = 5.0  # for the program to die of SIGKILL (it may be in an uninterruptible wait)
SETTING = "CONVEYOR_EXEC_ALLOW"

Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
EnvName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=256)]


class ExecPayload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``exec``: runs the program ``argv[0]`` (one the worker's CONVEYOR_EXEC_ALLOW allows;
    never through a shell) with the arguments ``argv[1:]``, the variables ``env`` added to a
    minimal environment, in the directory ``cwd`` (absolute). stdout lines
    ``PROGRESS <0-100> [message]`` report progress; exit 0 completes with the last other stdout
    line (as JSON when it parses); another exit code or a signal fails, with the last 4 KiB of
    stderr."""

    argv: Annotated[list[Text], msgspec.Meta(min_length=1, max_length=MAX_ARGS)]
    env: Annotated[dict[EnvName, Text], msgspec.Meta(max_length=MAX_ENV)] = {}
    cwd: Annotated[str, msgspec.Meta(max_length=MAX_PATH)] | None = None


_RULED = {"argv": {"prefixItems": [{"minLength": 1}]}, "cwd": {"pattern": "^/"}}
EXEC_RULES: dict[str, Any] = {"allOf": [{"properties": _RULED}]}
"""Also checked by the handler (``check``): a payload may be queued before the schema is out."""


class ExecError(Exception):
    """An ``exec`` job could not run its program."""


class ProgramFailed(ExecError):
    """The program exited with a non-zero code or died by a signal (retried, attempts left)."""

    def __init__(self, program: str, returncode: int, stderr: str) -> None:
        self.program = program
        self.returncode = returncode
        self.exit_code = returncode if returncode >= 0 else None
        self.signal = signal_name(-returncode) if returncode < 0 else None
        self.stderr = stderr
        super().__init__(failure_message(program, returncode, stderr))


class ProgramNotAllowed(ExecError, conveyor.PermanentFailure):
    """The program is not one the worker's allow-list (CONVEYOR_EXEC_ALLOW) matches."""


class ProgramNotFound(ExecError, conveyor.PermanentFailure):
    """No executable file is where ``argv[0]`` points, or on the job's PATH."""


class CannotStart(ExecError, conveyor.PermanentFailure):
    """The program cannot be started as asked (its directory, its arguments, exec itself)."""


def signal_name(number: int) -> str:
    try:
        return f"{signal.Signals(number).name} (signal {number})"
    except ValueError:
        return f"signal {number}"


def failure_message(program: str, returncode: int, stderr: str) -> str:
    if returncode < 0:
        how = f"was killed by {signal_name(-returncode)}"
        if -returncode == signal.SIGKILL:
            how += " (not by Conveyor; the kernel's out-of-memory killer sends it too)"
    else:
        how = f"exited with code {returncode}"
    if not stderr.strip():
        return f"{program} {how}, with nothing on stderr"
    return f"{program} {how}; the end of its stderr:\n{stderr}"


# -- which program ----------------------------------------------------------------------------


class AllowList:
    """The globs of CONVEYOR_EXEC_ALLOW, matched against a program's real path."""

    def __init__(self, patterns: Sequence[str]) -> None:
        for pattern in patterns:
            if not pattern.startswith("/"):
                raise ValueError(
                    f"{SETTING}: {pattern!r} is not an absolute path glob "
                    "(e.g. /opt/jobs/* or /usr/local/bin/render)"
                )
            if pattern.endswith("/"):
                raise ValueError(
                    f"{SETTING}: {pattern!r} names a directory; write {pattern}* for the "
                    "programs in it"
                )
        self.patterns = tuple(patterns)

    def allows(self, real_path: str) -> bool:
        parts = real_path.split("/")
        for pattern in self.patterns:
            wanted = _resolved(pattern).split("/")
            if len(wanted) == len(parts) and all(map(fnmatch.fnmatchcase, parts, wanted)):
                return True
        return False


def _resolved(pattern: str) -> str:
    """The pattern with its literal leading directories resolved, as the program's path is."""
    magic = re.search(r"[*?[]", pattern)
    if magic is None:
        return os.path.realpath(pattern)
    head = os.path.dirname(pattern[: magic.start()])
    return os.path.join(os.path.realpath(head), pattern[len(head) :].lstrip("/"))


def find_program(argv0: str, path: str, cwd: str | None) -> str:
    """The real path of the program ``argv0`` names (not yet checked against anything)."""
    if "/" in argv0:
        return os.path.realpath(os.path.join(cwd or os.getcwd(), argv0))
    found = shutil.which(argv0, path=path)
    if found is None:
        raise ProgramNotFound(
            f"no program {argv0!r} on the job's PATH ({path}); give its absolute path in "
            "argv[0], or set PATH in the payload's env"
        )
    return os.path.realpath(found)


def check(p: ExecPayload) -> None:
    """What the schema says and msgspec does not check (a payload queued unvalidated)."""
    if not p.argv[0]:
        raise CannotStart("argv[0] is empty: it names the program to run")
    texts = [*p.argv, *p.env, *p.env.values(), p.cwd or ""]
    if any("\x00" in text for text in texts):
        raise CannotStart("argv, env and cwd cannot hold a NUL character")
    if p.cwd is not None:
        if not p.cwd.startswith("/"):
            raise CannotStart(f"cwd must be an absolute path, not {p.cwd!r}")
        if not os.path.isdir(p.cwd):
            raise CannotStart(f"cwd {p.cwd!r} is not a directory on this worker")


def job_env(extra: dict[str, str], job_id: str, attempt: int) -> dict[str, str]:
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    env.setdefault("PATH", os.defpath)
    return {**env, **extra, "CONVEYOR_JOB_ID": job_id, "CONVEYOR_JOB_ATTEMPT": str(attempt)}


# -- what it says -----------------------------------------------------------------------------


class _Pipes(asyncio.SubprocessProtocol):
    """Feeds the output as it arrives; ``exited`` when the program has (``Process.wait`` of
    Python 3.11 also waits for the pipes, which a grandchild may hold open), ``closed`` when
    it has and every holder of its output has closed it."""

    def __init__(self, output: Output) -> None:
        loop = asyncio.get_running_loop()
        self.output = output
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        (self.output.stdout if fd == 1 else self.output.stderr)(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self.output.close()

    def process_exited(self) -> None:
        _settle(self.exited)

    def connection_lost(self, exc: Exception | None) -> None:
        _settle(self.exited)
        _settle(self.closed)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# -- the handler ------------------------------------------------------------------------------


class Exec:
    """The ``exec`` handler of one worker: its allow-list and its grace period."""

    def __init__(self, allow: Sequence[str], grace_s: float) -> None:
        self.allow = AllowList(allow)
        self.grace_s = grace_s

    def program(self, p: ExecPayload, env: dict[str, str]) -> str:
        check(p)
        real = find_program(p.argv[0], env["PATH"], p.cwd)
        if not self.allow.allows(real):
            shown = p.argv[0] if p.argv[0] == real else f"{p.argv[0]} (resolved to {real})"
            raise ProgramNotAllowed(
                f"program {shown} is not allowed on this worker: {SETTING} allows "
                f"{', '.join(self.allow.patterns) or 'none'}; add a glob matching {real} to "
                "it to run it"
            )
        if not (os.path.isfile(real) and os.access(real, os.X_OK)):
            raise ProgramNotFound(f"{real} is not an executable file on this worker")
        return real

    async def run(self, ctx: conveyor.Context, p: ExecPayload) -> Any:
        env = job_env(p.env, ctx.job_id, ctx.attempt)
        program = self.program(p, env)
        output = Output(ctx.progress)
        loop = asyncio.get_running_loop()
        try:
            transport, pipes = await loop.subprocess_exec(
                lambda: _Pipes(output),
                *p.argv,
                executable=program,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=p.cwd,
                start_new_session=True,  # its own group: a kill reaches all it starts
            )
        except OSError as e:
            raise CannotStart(f"cannot start {program}: {e.strerror or e}") from e
        group = transport.get_pid()
        ctx.log.info("exec: %s runs as pid %d", program, group)
        cancelled = False
        try:
            await asyncio.wait({pipes.exited})  # never cancels the future itself
        except asyncio.CancelledError:  # stop, timeout, shutdown
            cancelled = True
            await _to_the_end(self._terminate(ctx, group, pipes))
            raise
        finally:
            await _to_the_end(self._clear(ctx, group, pipes, transport, quiet=cancelled))
            if output.malformed:
                message = "exec: ignored %d malformed PROGRESS line(s), the first: %s"
                ctx.log.warning(message, output.malformed, output.first_malformed)
        returncode = transport.get_returncode()
        assert returncode is not None  # exited
        if returncode != 0:
            raise ProgramFailed(program, returncode, output.stderr_tail())
        return output.result()

    async def _terminate(self, ctx: conveyor.Context, group: int, pipes: _Pipes) -> None:
        """SIGTERM to the group; once the program and every holder of its output are gone,
        or after the grace period, SIGKILL to the group."""
        _kill_group(group, signal.SIGTERM)
        await asyncio.wait({pipes.closed}, timeout=self.grace_s)
        if _kill_group(group, signal.SIGKILL):
            ctx.log.info("exec: SIGKILL to process group %d", group)
        await asyncio.wait({pipes.exited}, timeout=KILL_WAIT_S)

    @staticmethod
    async def _clear(
        ctx: conveyor.Context, group: int, pipes: _Pipes, transport: Any, *, quiet: bool
    ) -> None:
        """Whatever is left of the group dies (SIGKILL), the output is read to its end. (A
        zombie its new parent has not reaped counts as left: the warning may be about the dead.)"""
        if _kill_group(group, signal.SIGKILL) and pipes.exited.done() and not quiet:
            ctx.log.warning("exec: killed what the program left running in group %d", group)
        await asyncio.wait({pipes.exited}, timeout=KILL_WAIT_S)
        await asyncio.wait({pipes.closed}, timeout=DRAIN_S)
        if not pipes.exited.done():
            ctx.log.error("exec: pid %d did not die of SIGKILL in %gs", group, KILL_WAIT_S)
        elif not pipes.closed.done():
            ctx.log.warning("exec: a process outside group %d holds the program's output", group)
        transport.close()


def _kill_group(group: int, sig: signal.Signals) -> bool:
    """Whether the group had a process to signal. Its id stays reserved while any process is
    in it, so a signal never reaches another program's group (unless pids wrap around in the
    instant between the group's end and this call)."""
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member changed its user (setuid): it cannot be signalled
        pass
    return True


async def _to_the_end(work: Awaitable[None]) -> None:
    """Await ``work`` to its end even when cancelled meanwhile (a shutdown during a stop), and
    pass the cancellation on after: a kill is never left half done."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while True:
        try:
            await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():  # the work itself was cancelled (the event loop is closing)
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


def exec_type(allow: Sequence[str], *, grace_s: float = 5.0) -> conveyor.JobType:
    """The ``exec`` job type, running the programs ``allow`` (path globs) matches; a stopped
    or timed-out program's group gets ``grace_s`` between SIGTERM and SIGKILL."""
    handler = Exec(allow, grace_s)
    return conveyor.JobType(
        "exec",
        ExecPayload,
        handler.run,
        rules=EXEC_RULES,
        description=ExecPayload.__doc__,
        grace_s=grace_s,
    )

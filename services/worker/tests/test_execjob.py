"""The ``exec`` job type (execjob.py): the PROGRESS protocol, the output caps, the allow-list,
the environment, the failure messages, and the handler itself running tiny real programs
(``/bin/sh`` scripts of the tests': the handler never uses a shell) without NATS."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

import conveyor
from conveyor_events import InvalidPayload
from conveyor_events.jobtypes import PayloadSchema
from conveyor_worker import execjob
from conveyor_worker.execjob import (
    AllowList,
    CannotStart,
    ExecPayload,
    ProgramFailed,
    ProgramNotAllowed,
    ProgramNotFound,
    exec_type,
    failure_message,
)
from conveyor_worker.execoutput import (
    LINE_LIMIT,
    MESSAGE_LIMIT,
    STDERR_TAIL,
    Output,
    progress_line,
)

pytestmark = pytest.mark.unit

SH = os.path.realpath("/bin/sh")
TOUCH = os.path.realpath("/usr/bin/touch")
GRACE_S = 0.5


@pytest.fixture
def here(tmp_path: Path) -> str:
    """The test's directory, symlinks resolved (as the allow-list matches)."""
    return os.path.realpath(tmp_path)


# -- the PROGRESS protocol --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("PROGRESS 50", (50.0, None)),
        ("PROGRESS 0", (0.0, None)),
        ("PROGRESS 100 done", (100.0, "done")),
        ("PROGRESS 12.5 step 1/8", (12.5, "step 1/8")),
        ("PROGRESS\t33\t  a message  ", (33.0, "a message")),
        ("PROGRESS 40% copying", (40.0, "copying")),
        ("PROGRESS .5", (0.5, None)),
        ("PROGRESS 7.", (7.0, None)),
        ("PROGRESS 60    ", (60.0, None)),
    ],
)
def test_a_progress_line_gives_percent_and_message(
    line: str, expected: tuple[float, str | None]
) -> None:
    assert progress_line(line) == expected


@pytest.mark.parametrize(
    "line",
    ["PROGRESSIVE rock", "progress 50", "Progress 50", " PROGRESS 50", "50", "", "PROGRESS_50"],
)
def test_other_lines_are_not_progress(line: str) -> None:
    assert progress_line(line) is None


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("PROGRESS", "is not a percent"),
        ("PROGRESS   ", "is not a percent"),
        ("PROGRESS abc", "'abc' is not a percent"),
        ("PROGRESS -1", "'-1' is not a percent"),
        ("PROGRESS 100.5", "past 100"),
        ("PROGRESS 1e2", "is not a percent"),
        ("PROGRESS nan", "is not a percent"),
        ("PROGRESS inf", "is not a percent"),
        ("PROGRESS 1_0", "is not a percent"),
        ("PROGRESS \uff15\uff10", "is not a percent"),  # fullwidth digits
    ],
)
def test_a_malformed_progress_line_says_what_is_wrong(line: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        progress_line(line)


def test_a_progress_message_is_capped() -> None:
    got = progress_line("PROGRESS 5 " + "m" * (MESSAGE_LIMIT * 3))
    assert got == (5.0, "m" * MESSAGE_LIMIT)


# -- what is kept of the output ---------------------------------------------------------------


def collecting() -> tuple[Output, list[tuple[float, str | None]]]:
    seen: list[tuple[float, str | None]] = []
    return Output(lambda pct, msg: seen.append((pct, msg))), seen


def test_progress_is_reported_as_it_comes_and_the_last_other_line_kept() -> None:
    out, seen = collecting()
    for chunk in [b"PROGRESS 10 one\nfirst li", b"ne\r\nPROGR", b"ESS 20\n\n   \nPROGRESS x\n"]:
        out.stdout(chunk)
    assert seen == [(10.0, "one"), (20.0, None)]
    assert out.last == "first line"  # CR LF ends a line too; blank and PROGRESS lines skipped
    assert out.malformed == 1
    assert out.first_malformed == "'x' is not a percent (PROGRESS <0-100> [message])"
    out.stdout(b'{"answer": 42}')  # no newline: a line once stdout closes
    assert out.last == "first line"
    out.close()
    assert out.result() == {"answer": 42}


@pytest.mark.parametrize(
    ("lines", "result"),
    [
        ([b'{"a": [1, 2]}'], {"a": [1, 2]}),
        ([b"42"], 42),
        ([b"null"], None),
        ([b'"quoted"'], "quoted"),
        ([b"all done"], "all done"),
        ([b"{not json"], "{not json"),
        ([b"first", b"PROGRESS 100"], "first"),
        ([], None),
        ([b"PROGRESS 100 only progress"], None),
        (["naïve ünïcode".encode(), b"\xff\xfe bad bytes"], "\ufffd\ufffd bad bytes"),
    ],
)
def test_the_result_is_the_last_line_as_json_when_it_parses(
    lines: list[bytes], result: Any
) -> None:
    out, _ = collecting()
    out.stdout(b"".join(line + b"\n" for line in lines))
    out.close()
    assert out.result() == result


def test_an_overlong_line_is_truncated_never_buffered_whole() -> None:
    out, _ = collecting()
    chunk = b"x" * 65_536
    for _ in range(160):  # a 10 MiB line
        out.stdout(chunk)
        assert len(out._line) <= LINE_LIMIT
    out.stdout(b"\nshort\n" + b"y" * (LINE_LIMIT + 1) + b"\n")
    assert out.last is not None and out.last.startswith("y" * LINE_LIMIT)
    assert out.last.endswith(f"…[truncated: {LINE_LIMIT + 1} bytes, the first {LINE_LIMIT} kept]")
    out.stdout(b"x" * (10 * 2**20) + b"\n")
    assert out.last == "x" * LINE_LIMIT + f" …[truncated: {10 * 2**20} bytes, the first 65536 kept]"


def test_an_overlong_progress_line_still_reports_progress() -> None:
    out, seen = collecting()
    out.stdout(b"PROGRESS 70 " + b"m" * (LINE_LIMIT * 2) + b"\n")
    assert seen == [(70.0, "m" * MESSAGE_LIMIT)]
    assert out.last is None


def test_stderr_keeps_only_its_last_4_kib() -> None:
    out, _ = collecting()
    out.stderr(b"early\n")
    assert out.stderr_tail() == "early\n"
    for n in range(10_000):
        out.stderr(f"line {n}\n".encode())
        assert len(out._stderr) <= STDERR_TAIL
    tail = out.stderr_tail()
    assert tail.startswith("…") and tail.endswith("line 9999\n")
    assert len(tail.encode()) <= STDERR_TAIL + len("…".encode())
    assert "early" not in tail
    out.stderr(b"z" * 100_000)
    assert out.stderr_tail() == "…" + "z" * STDERR_TAIL


def test_a_stderr_tail_cut_inside_a_character_starts_at_the_next_one() -> None:
    out, _ = collecting()
    out.stderr("é".encode() * STDERR_TAIL)  # 2 bytes each: the cut may fall between them
    out.stderr(b"x")
    tail = out.stderr_tail()
    assert "\ufffd" not in tail and tail.endswith("éx")


# -- the failure messages ---------------------------------------------------------------------


def test_a_non_zero_exit_says_the_code_and_the_end_of_stderr() -> None:
    e = ProgramFailed("/opt/jobs/render", 3, "frame 12: out of cheese\n")
    assert str(e) == (
        "/opt/jobs/render exited with code 3; the end of its stderr:\nframe 12: out of cheese\n"
    )
    assert (e.exit_code, e.signal) == (3, None)
    assert not isinstance(e, conveyor.PermanentFailure)  # retried while attempts are left


@pytest.mark.parametrize(
    ("returncode", "says"),
    [
        (-signal.SIGSEGV, "was killed by SIGSEGV (signal 11), with nothing on stderr"),
        (-signal.SIGABRT, "was killed by SIGABRT (signal 6)"),
        (-signal.SIGKILL, "was killed by SIGKILL (signal 9) (not by Conveyor; the kernel's"),
        (-99, "was killed by signal 99, with"),
        (1, "exited with code 1, with nothing on stderr"),
        (255, "exited with code 255"),
    ],
)
def test_a_death_by_signal_names_the_signal(returncode: int, says: str) -> None:
    assert says in failure_message("/bin/x", returncode, "  \n")


# -- which programs may run -------------------------------------------------------------------


def test_the_allow_list_matches_real_paths_by_component(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    (jobs / "sub").mkdir(parents=True)
    base = os.path.realpath(jobs)
    allow = AllowList([f"{base}/*", "/usr/bin/pyth?n3.[0-9]*", "/opt/exact"])
    assert allow.allows(f"{base}/render")
    assert not allow.allows(f"{base}/sub/render")  # '*' stays within one component
    assert not allow.allows(f"{base}")
    assert allow.allows("/usr/bin/python3.11")
    assert not allow.allows("/usr/bin/python3")
    assert allow.allows("/opt/exact")
    assert not allow.allows("/opt/exact2")
    assert not allow.allows("/opt/EXACT")  # case-sensitive


def test_a_pattern_through_a_symlinked_directory_matches_the_real_path(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    allow = AllowList([f"{tmp_path}/link/*", f"{tmp_path}/link/exact"])
    assert allow.allows(f"{os.path.realpath(real)}/tool")


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("progress", "'progress' is not an absolute path glob"),
        ("*/bin/x", "is not an absolute path glob"),
        ("/opt/jobs/", "names a directory; write /opt/jobs/\\* for the programs in it"),
    ],
)
def test_a_bad_pattern_fails_the_workers_start(pattern: str, says: str) -> None:
    with pytest.raises(ValueError, match=f"CONVEYOR_EXEC_ALLOW: .*{says}"):
        exec_type([pattern])


def test_a_program_is_found_on_path_by_name_or_by_path(tmp_path: Path) -> None:
    tool = tmp_path / "bin" / "tool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    real = os.path.realpath(tool)
    assert execjob.find_program("tool", f"/nowhere:{tool.parent}", None) == real
    assert execjob.find_program(str(tool), "/nowhere", None) == real
    assert execjob.find_program("bin/tool", "/nowhere", str(tmp_path)) == real
    assert execjob.find_program("./bin/../bin/tool", "", str(tmp_path)) == real
    with pytest.raises(ProgramNotFound, match="no program 'tool' on the job's PATH"):
        execjob.find_program("tool", "/nowhere", None)


# -- the environment --------------------------------------------------------------------------


def test_the_environment_is_minimal_plus_the_payloads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_URL", "nats://conveyor:secret@127.0.0.1:4222")
    monkeypatch.setenv("DATABASE_URL", "postgresql://conveyor:secret@127.0.0.1/conveyor")
    monkeypatch.setenv("CONVEYOR_EXEC_ALLOW", "/opt/*")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.delenv("TZ", raising=False)
    env = execjob.job_env({"FOO": "bar", "LANG": "fr_FR.UTF-8"}, "job-1", 2)
    assert env["PATH"] == "/usr/bin:/bin" and env["LANG"] == "fr_FR.UTF-8"
    assert env["FOO"] == "bar"
    assert env["CONVEYOR_JOB_ID"] == "job-1" and env["CONVEYOR_JOB_ATTEMPT"] == "2"
    assert set(env) <= {*execjob.PASSED_ENV, "FOO", "CONVEYOR_JOB_ID", "CONVEYOR_JOB_ATTEMPT"}
    assert "secret" not in str(env) and "TZ" not in env
    monkeypatch.delenv("PATH")
    assert execjob.job_env({}, "job-1", 1)["PATH"] == os.defpath


# -- the payload ------------------------------------------------------------------------------

SCHEMA = PayloadSchema("exec", exec_type(["/opt/*"]).describe()["schema"])


def test_the_published_schema() -> None:
    described = exec_type(["/opt/*"]).describe()
    assert described["name"] == "exec"
    schema = described["schema"]
    assert schema["required"] == ["argv"] and schema["additionalProperties"] is False
    assert schema["properties"]["argv"]["minItems"] == 1
    assert schema["properties"]["argv"]["maxItems"] == execjob.MAX_ARGS
    assert "CONVEYOR_EXEC_ALLOW" in described["description"]
    assert SCHEMA.validate({"argv": ["/opt/x", ""]}) == {
        "argv": ["/opt/x", ""],
        "env": {},
        "cwd": None,
    }


@pytest.mark.parametrize(
    ("payload", "field", "says"),
    [
        ({}, "payload.argv", "required, and missing"),
        ({"argv": []}, "payload.argv", "less than 1 item"),
        ({"argv": "/bin/ls -l"}, "payload.argv", 'is not of type "array"'),
        ({"argv": [""]}, "payload.argv[0]", "shorter than 1 character"),
        ({"argv": ["/opt/x", 3]}, "payload.argv[1]", 'is not of type "string"'),
        # the message quotes the value first, and is cut at 300 characters
        ({"argv": ["x"] * 1025}, "payload.argv", '["x","x","x"'),
        ({"argv": ["x" * 32_769]}, "payload.argv[0]", '"xxxxxxxx'),
        ({"argv": ["x"], "env": {"A=B": "c"}}, "payload.env", "does not match"),
        ({"argv": ["x"], "env": {"A": 1}}, "payload.env.A", 'is not of type "string"'),
        ({"argv": ["x"], "cwd": "relative/dir"}, "payload.cwd", 'does not match "^/"'),
        ({"argv": ["x"], "shell": True}, "payload.shell", "not a field of this payload"),
    ],
)
def test_a_bad_payload_is_refused_naming_the_field(payload: Any, field: str, says: str) -> None:
    with pytest.raises(InvalidPayload) as raised:
        SCHEMA.validate(payload)
    assert raised.value.field == field
    assert says in str(raised.value)


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (ExecPayload([""]), r"argv\[0\] is empty"),
        (ExecPayload(["/bin/echo", "a\x00b"]), "cannot hold a NUL"),
        (ExecPayload(["/bin/echo"], env={"A": "\x00"}), "cannot hold a NUL"),
        (ExecPayload(["/bin/echo"], cwd="relative"), "cwd must be an absolute path"),
        (ExecPayload(["/bin/echo"], cwd="/no/such/dir"), "'/no/such/dir' is not a directory"),
    ],
)
def test_the_handler_checks_what_the_schema_says_too(payload: ExecPayload, says: str) -> None:
    with pytest.raises(CannotStart, match=says):
        execjob.check(payload)


# -- the handler, running real programs -------------------------------------------------------


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has died, only its parent has not reaped it yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _pids_in(path: Path, n: int) -> list[int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if path.exists():
            pids = [int(line) for line in path.read_text().split()]
            if len(pids) >= n:
                return pids
        time.sleep(0.02)
    raise AssertionError(f"{path} never held {n} pids")


async def pids_in(path: Path, n: int) -> list[int]:
    """The pids the test's program wrote to ``path``, once there are ``n``."""
    return await asyncio.to_thread(_pids_in, path, n)


def _wait_dead(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [pid for pid in pids if alive(pid)] == []


async def wait_dead(pids: list[int], timeout: float = 5) -> None:
    await asyncio.to_thread(_wait_dead, pids, timeout)


class Job:
    """The exec handler with its context, as the worker calls it."""

    def __init__(self, allow: list[str] | None = None) -> None:
        self.type = exec_type(allow if allow is not None else [SH], grace_s=GRACE_S)
        self.progress: list[tuple[float, str | None]] = []
        self.ctx = conveyor.Context("job-1", 1, lambda pct, msg: self.progress.append((pct, msg)))

    async def __call__(self, *argv: str, **fields: Any) -> Any:
        payload = self.type.decode({"argv": list(argv), **fields})
        return await self.type.handler(self.ctx, payload)

    def start(self, *argv: str, **fields: Any) -> asyncio.Task[Any]:
        return asyncio.ensure_future(self(*argv, **fields))


def sh(script: str, *args: str) -> tuple[str, ...]:
    return (SH, "-c", script, "sh", *args)


async def test_progress_and_a_json_result() -> None:
    job = Job()
    script = 'echo "PROGRESS 25 a"; echo noise; echo PROGRESS 100; echo \'{"ok": true}\''
    assert await job(*sh(script)) == {"ok": True}
    assert job.progress == [(25.0, "a"), (100.0, None)]
    assert job.type.is_async


async def test_no_output_is_a_null_result_and_text_a_string() -> None:
    job = Job()
    assert await job(*sh("exit 0")) is None
    assert await job(*sh("printf 'no newline'")) == "no newline"


async def test_a_non_zero_exit_fails_with_the_code_and_the_stderr_tail() -> None:
    job = Job()
    with pytest.raises(ProgramFailed) as raised:
        await job(*sh("i=0; while [ $i -lt 2000 ]; do echo err $i >&2; i=$((i+1)); done; exit 7"))
    e = raised.value
    assert e.exit_code == 7 and e.program == SH
    assert str(e).startswith(f"{SH} exited with code 7; the end of its stderr:\n…")
    assert str(e).endswith("err 1999\n") and "err 0\n" not in str(e)
    assert len(e.stderr.encode()) <= STDERR_TAIL + 3


async def test_a_death_by_signal_is_named() -> None:
    with pytest.raises(ProgramFailed, match=r"was killed by SIGSEGV \(signal 11\)") as raised:
        await Job()(*sh("echo dying >&2; kill -SEGV $$"))
    assert raised.value.signal == "SIGSEGV (signal 11)" and raised.value.exit_code is None
    assert "dying" in raised.value.stderr


async def test_the_program_sees_its_environment_and_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NATS_URL", "nats://conveyor:secret@127.0.0.1:4222")
    script = 'echo "$PWD|$FOO|$CONVEYOR_JOB_ID|$CONVEYOR_JOB_ATTEMPT|${NATS_URL:-unset}"'
    got = await Job()(*sh(script), env={"FOO": "bar baz"}, cwd=str(tmp_path))
    assert got == f"{tmp_path}|bar baz|job-1|1|unset"


async def test_argv_zero_is_passed_as_given_and_a_name_is_looked_up_on_path() -> None:
    got = await Job()("sh", "-c", 'echo "$0"', env={"PATH": os.path.dirname(SH)})
    assert got == "sh"


async def test_a_program_outside_the_allow_list_never_starts(here: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(ProgramNotAllowed) as raised:
        await Job([f"{here}/*"])(TOUCH, str(marker))
    assert str(raised.value) == (
        f"program {TOUCH} is not allowed on this worker: CONVEYOR_EXEC_ALLOW allows "
        f"{here}/*; add a glob matching {TOUCH} to it to run it"
    )
    assert isinstance(raised.value, conveyor.PermanentFailure) and not marker.exists()


async def test_a_symlink_cannot_escape_the_allow_list(here: str, tmp_path: Path) -> None:
    (tmp_path / "sh").symlink_to(SH)
    job = Job([f"{here}/*"])
    with pytest.raises(ProgramNotAllowed, match=rf"{tmp_path}/sh \(resolved to {SH}\)"):
        await job(str(tmp_path / "sh"), "-c", "true")
    with pytest.raises(ProgramNotAllowed, match=rf"resolved to {SH}"):
        await job(f"{tmp_path}/../{tmp_path.name}/../../../../../../{SH}", "-c", "true")


async def test_an_allowed_path_that_is_no_program_is_not_found(here: str, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("not a program")
    job = Job([f"{here}/*"])
    with pytest.raises(ProgramNotFound, match=r"data\.txt is not an executable file"):
        await job(str(tmp_path / "data.txt"))
    with pytest.raises(ProgramNotFound, match=r"missing is not an executable file"):
        await job(str(tmp_path / "missing"))


async def test_an_exec_failure_cannot_start(here: str, tmp_path: Path) -> None:
    script = tmp_path / "no-shebang"
    script.write_bytes(b"\x7fELF garbage")
    script.chmod(0o755)
    with pytest.raises(CannotStart, match=r"cannot start .*no-shebang: Exec format error"):
        await Job([f"{here}/*"])(str(script))


TREE = 'sh -c "sleep 1000 & echo \\$! >> $1; wait" & echo $! >> "$1"; echo $$ >> "$1"; wait'
"""The program (sh), its child (sh) and its grandchild (sleep), their pids in $1."""


async def test_a_cancel_terminates_the_whole_tree(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    job = Job()
    task = job.start(*sh(TREE, str(pidfile)))
    pids = await pids_in(pidfile, 3)
    assert all(alive(pid) for pid in pids)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < GRACE_S  # SIGTERM was enough: no grace waited
    await wait_dead(pids)


async def test_a_program_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    task = Job().start(*sh("trap '' TERM; " + TREE, str(pidfile)))
    pids = await pids_in(pidfile, 3)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert GRACE_S <= time.monotonic() - started < GRACE_S + 2
    await wait_dead(pids)


async def test_a_timeout_kills_the_tree(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    job = Job()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1):  # as the worker applies timeout_s
            await job(*sh(TREE, str(pidfile)))
    await wait_dead(await pids_in(pidfile, 3))


async def test_a_second_cancel_during_the_grace_still_kills_everything(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    task = Job().start(*sh("trap '' TERM; " + TREE, str(pidfile)))
    pids = await pids_in(pidfile, 3)
    task.cancel()
    await asyncio.sleep(GRACE_S / 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_dead(pids)


@pytest.mark.parametrize("output", ["", " >/dev/null 2>&1"], ids=["holding-stdout", "detached"])
async def test_what_a_program_leaves_running_dies_when_it_ends(tmp_path: Path, output: str) -> None:
    """A background grandchild holding stdout would keep a reader waiting for its end of file
    forever: the job ends with its program, and kills the rest of its group."""
    pidfile = tmp_path / "pids"
    started = time.monotonic()
    got = await Job()(*sh(f'sleep 1000{output} & echo $! > "$1"; echo finished', str(pidfile)))
    assert got == "finished" and time.monotonic() - started < 2
    await wait_dead(await pids_in(pidfile, 1))


async def test_a_flood_of_output_is_read_with_bounded_memory() -> None:
    script = "yes PROGRESS 50 flood | head -n 100000; head -c 300000 /dev/zero | tr '\\0' x; echo"
    job = Job([SH, "/usr/bin/*"])
    got = await job(*sh(script))
    assert isinstance(got, str) and got.startswith("x" * LINE_LIMIT)
    assert got.endswith("[truncated: 300000 bytes, the first 65536 kept]")
    assert len(job.progress) == 100_000 and job.progress[-1] == (50.0, "flood")


async def test_exec_decodes_what_the_api_validated() -> None:
    checked = SCHEMA.validate({"argv": [SH, "-c", "echo hi"]})
    payload = exec_type([SH]).decode(checked)
    assert payload == ExecPayload([SH, "-c", "echo hi"])
    with pytest.raises(msgspec.ValidationError):
        exec_type([SH]).decode({"argv": [SH], "shell": True})

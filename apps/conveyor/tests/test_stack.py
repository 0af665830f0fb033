"""The credentials file of ``make up``: made once, kept, and read by the other commands only
for the URLs they were not given (issue 10, defect 3)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from conveyor_cli import stack

pytestmark = pytest.mark.unit


def test_the_credentials_are_made_once_readable_by_the_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    first = stack.load_or_create(data)
    assert stack.load_or_create(data) == first
    assert first.nats.password != first.postgres.password
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / stack.FILE).stat().st_mode) == 0o600


def test_the_commands_take_from_the_file_only_what_they_were_not_given(tmp_path: Path) -> None:
    credentials = stack.load_or_create(tmp_path).started(nats_port=4999, postgres_port=None)
    stack.save(tmp_path, credentials)
    environ = {stack.DATA_DIR_ENV: str(tmp_path)}
    stack.fill_env(environ)
    password = credentials.nats.password
    assert environ["NATS_URL"] == f"nats://conveyor:{password}@127.0.0.1:4999"
    assert "DATABASE_URL" not in environ  # up was given a DATABASE_URL: none of its own

    given = {stack.DATA_DIR_ENV: str(tmp_path), "NATS_URL": "nats://elsewhere:4222"}
    stack.fill_env(given)
    assert given["NATS_URL"] == "nats://elsewhere:4222"
    assert stack.env_lines(environ) == [
        f"export NATS_URL=nats://conveyor:{password}@127.0.0.1:4999"
    ]


def test_without_a_file_nothing_is_filled_and_env_has_nothing(tmp_path: Path) -> None:
    environ = {stack.DATA_DIR_ENV: str(tmp_path / "none")}
    stack.fill_env(environ)
    assert environ == {stack.DATA_DIR_ENV: str(tmp_path / "none")}
    assert stack.env_lines(environ) is None

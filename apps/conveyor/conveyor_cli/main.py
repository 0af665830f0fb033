"""The ``conveyor`` command: the CLI of SPEC §3.4 and the service entry points of §3.1."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from conveyor_cli import bulk, client, export, schedules, stack

LOCAL_STACK = {"api", "worker", "projector", "notifier", "migrate", "replay", "verify", "export"}
"""Commands that talk to NATS or PostgreSQL: without ``NATS_URL`` / ``DATABASE_URL`` they use
the servers of ``make up`` (its credentials file)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="conveyor", description="Conveyor background jobs.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, help_ in [
        ("api", "run the REST API and the dashboard (port 8000)"),
        ("worker", "run a worker"),
        ("projector", "run the projector (event log -> PostgreSQL read model)"),
        ("notifier", "run the websocket feed (port 8001)"),
        ("migrate", "create the JetStream topology and migrate PostgreSQL"),
    ]:
        sub.add_parser(name, help=help_)
    s = sub.add_parser("up", help="start the whole system locally (make up)")
    s.add_argument(
        "--data-dir",
        type=Path,
        default=stack.data_dir(os.environ),
        help="where the embedded servers keep their data and credentials"
        f" (${stack.DATA_DIR_ENV}, else .conveyor)",
    )
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--api-port", type=int, default=8000)
    s.add_argument("--notifier-port", type=int, default=8001)
    s.add_argument("--nats-port", type=int, default=4222, help="embedded nats-server")
    s.add_argument("--postgres-port", type=int, default=54320, help="embedded PostgreSQL")

    s = sub.add_parser("submit", help="submit a job")
    s.add_argument("type")
    s.add_argument("--priority", choices=["high", "regular"], default="regular")
    s.add_argument("--payload", default="{}", help="JSON object")
    s.add_argument("--max-attempts", type=int, default=None)
    s.add_argument("--timeout", type=float, default=None, help="seconds per attempt")
    s.add_argument("--idempotency-key", default=None)
    s.add_argument("--wait", action="store_true", help="follow progress until it finishes")

    s = sub.add_parser("list", help="list jobs, newest first")
    s.add_argument("--status", help="comma list, e.g. running,pending")
    s.add_argument("--priority", choices=["high", "regular"])
    s.add_argument("--type")
    s.add_argument("-q", "--query", help="id prefix or payload text")
    s.add_argument("--limit", type=int, default=20)
    s.add_argument("--json", action="store_true")

    for name, help_ in [
        ("show", "show one job"),
        ("stop", "stop a pending or running job"),
        ("restart", "restart a failed or stopped job"),
        ("delete", "delete a finished job"),
        ("history", "a job's events from the log"),
    ]:
        s = sub.add_parser(name, help=help_)
        s.add_argument("id")
        if name in ("show", "history"):
            s.add_argument("--json", action="store_true")
        if name in ("stop", "restart", "delete"):
            s.add_argument("--reason", help="why (at most 500 characters), recorded in the event")
        if name == "show":
            s.add_argument(
                "--as-of",
                metavar="TIME",
                help="the job as it was at TIME (RFC 3339 with an offset, e.g."
                " 2026-12-07T10:00:00Z), folded from the log; deleted jobs too",
            )

    s = sub.add_parser("watch", help="follow the live event feed")
    s.add_argument("--job", dest="job_id")
    s.add_argument("--since", type=int)

    schedules.add_parser(sub)
    bulk.add_parser(sub)

    export.add_parser(sub)
    sub.add_parser("env", help="print the NATS_URL and DATABASE_URL of make up, for a shell")
    s = sub.add_parser(
        "replay",
        help="rebuild the read model from the event log beside the live one, then switch to it",
    )
    s.add_argument(
        "--in-place",
        action="store_true",
        help="empty the live read model and rebuild it where it is (reads see partial data"
        " until it is done)",
    )
    s = sub.add_parser("verify", help="compare the read model with a fold of the log")
    s.add_argument(
        "--wait",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="first wait up to SECONDS for the projector to reach the log's end and every job"
        " to be terminal; then report non-terminal jobs and a lagging checkpoint as failures",
    )
    return p


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (>= 0)")
    return value


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    command: str = args.command
    if command in LOCAL_STACK:  # a service as its own NATS user, the others as the operator
        stack.fill_env(os.environ, command if command in stack.NATS_SERVICES else None)
    if command == "api":
        from conveyor_api.main import main as api

        api()
    elif command == "worker":
        from conveyor_worker.main import main as worker

        worker()
    elif command == "projector":
        from conveyor_projector.main import main as projector

        projector()
    elif command == "notifier":
        from conveyor_notifier.main import main as notifier

        notifier()
    elif command == "up":
        try:
            from conveyor_cli.dev.up import up
        except ModuleNotFoundError as e:
            if e.name != "conveyor_cli.dev":
                raise
            sys.exit(  # the wheel leaves the local stack out (ADR 15)
                "conveyor up: this installation has no local stack (conveyor_cli.dev): it runs"
                " from a checkout of Conveyor (make up)"
            )
        sys.exit(
            up(
                args.data_dir,
                args.workers,
                args.api_port,
                args.notifier_port,
                args.nats_port,
                args.postgres_port,
            )
        )
    elif command == "env":
        lines = stack.env_lines(os.environ)
        if lines is None:
            where = stack.data_dir(os.environ)
            print(f"conveyor env: no credentials in {where}: run `make up`", file=sys.stderr)
            sys.exit(1)
        print("\n".join(lines))
    elif command in ("migrate", "replay", "verify"):
        from conveyor_cli import admin

        sys.exit(
            admin.run(
                command,
                wait_s=getattr(args, "wait", None),
                in_place=getattr(args, "in_place", False),
            )
        )
    elif command == "export":
        sys.exit(export.run(args))
    elif command == "schedule":
        sys.exit(schedules.run(args))
    elif command == "bulk":
        sys.exit(bulk.run(args))
    else:
        sys.exit(client.run(command, args))


if __name__ == "__main__":
    main()

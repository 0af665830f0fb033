"""``conveyor schedule add|list|show|remove|pause|resume``: recurring jobs, through the API
(``CONVEYOR_API_URL``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from conveyor_cli.client import CliError, _request, guarded


def add_parser(sub: Any) -> None:
    """The ``schedule`` command and its subcommands, on the main parser's ``sub``."""
    p = sub.add_parser("schedule", help="recurring jobs: one job per tick of a cron")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    s = verbs.add_parser("add", help="create a schedule")
    s.add_argument("name", help="letters, digits, _ and -")
    s.add_argument(
        "--cron",
        required=True,
        help="5 fields (minute hour day-of-month month day-of-week) or 6 (second first)",
    )
    s.add_argument("--timezone", default="UTC", help="IANA time zone, e.g. Europe/Paris")
    s.add_argument("type", help="the job type each tick submits")
    s.add_argument("--payload", default="{}", help="JSON object")
    s.add_argument("--priority", choices=["high", "regular"], default=None)
    s.add_argument("--max-attempts", type=int, default=None)
    s.add_argument("--timeout", type=float, default=None, help="seconds per attempt")
    s.add_argument("--paused", action="store_true", help="create it paused")
    s = verbs.add_parser("list", help="list schedules with their next and last run")
    s.add_argument("--json", action="store_true")
    s = verbs.add_parser("show", help="show one schedule")
    s.add_argument("name")
    for verb, help_ in [
        ("remove", "delete a schedule (its jobs stay)"),
        ("pause", "stop the ticks, keep the schedule"),
        ("resume", "start the ticks again"),
    ]:
        s = verbs.add_parser(verb, help=help_)
        s.add_argument("name")


def _line(s: dict[str, Any]) -> str:
    state = "enabled" if s["enabled"] else "paused"
    job = s["job"]
    return (
        f"{s['name']:<20} {state:<8} {s['cron']!r:<18} {s['timezone']:<16} "
        f"{job['type']:<10} next {s['next_run_at'] or '-'}  last {s['last_run_at'] or '-'}"
    )


def run(args: argparse.Namespace) -> int:
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    verb: str = args.verb
    if verb == "add":
        try:
            payload = json.loads(args.payload)
        except json.JSONDecodeError as e:
            raise CliError(f"--payload is not JSON: {e}") from e
        job: dict[str, Any] = {"type": args.type, "payload": payload}
        for key, value in [
            ("priority", args.priority),
            ("max_attempts", args.max_attempts),
            ("timeout_s", args.timeout),
        ]:
            if value is not None:
                job[key] = value
        body = {
            "name": args.name,
            "cron": args.cron,
            "timezone": args.timezone,
            "job": job,
            "enabled": not args.paused,
        }
        print(_line(_request("POST", "/schedules", json=body).json()))
        return 0
    if verb == "list":
        page = _request("GET", "/schedules").json()
        if args.json:
            print(json.dumps(page, indent=2))
        else:
            for s in page["items"]:
                print(_line(s))
        return 0
    if verb == "show":
        print(json.dumps(_request("GET", f"/schedules/{args.name}").json(), indent=2))
        return 0
    if verb == "remove":
        _request("DELETE", f"/schedules/{args.name}")
        print(f"removed {args.name}")
        return 0
    if verb in ("pause", "resume"):
        body = {"enabled": verb == "resume"}
        print(_line(_request("PATCH", f"/schedules/{args.name}", json=body).json()))
        return 0
    raise CliError(f"unknown schedule command {verb}")

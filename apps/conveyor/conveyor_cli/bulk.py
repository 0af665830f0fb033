"""``conveyor bulk stop|restart|delete``: many jobs at once, by filter or ids, through
``POST /api/v1/jobs/bulk``. It counts the matches first (a dry run) and asks, unless
``--yes``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from conveyor_cli.client import CliError, _request, guarded

STATUSES = ("pending", "running", "completed", "failed", "stopped")


def add_parser(sub: Any) -> None:
    """The ``bulk`` command, on the main parser's ``sub``."""
    s = sub.add_parser(
        "bulk",
        help="stop, restart or delete many jobs (by filter or ids)",
        description="Select jobs as `conveyor list` does (--status, --priority, --type, -q) or"
        " by --ids; shows how many match and asks before acting, unless --yes.",
    )
    s.add_argument("action", choices=["stop", "restart", "delete"])
    s.add_argument("--status", type=_statuses, help="comma list, e.g. failed,stopped")
    s.add_argument("--priority", choices=["high", "regular"])
    s.add_argument("--type")
    s.add_argument("-q", "--q", "--query", dest="q", help="id prefix or payload text")
    s.add_argument("--ids", nargs="+", metavar="ID", help="these jobs (instead of a filter)")
    s.add_argument("--reason", help="recorded in each job's event")
    s.add_argument("--yes", "-y", action="store_true", help="do not ask")
    s.add_argument("--json", action="store_true", help="print the API's answer as JSON")


def _statuses(text: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in items if s not in STATUSES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown status {', '.join(unknown)}; allowed: {', '.join(STATUSES)}"
        )
    return items


def _body(args: argparse.Namespace) -> dict[str, Any]:
    filters = [args.status, args.priority, args.type, args.q]
    if args.ids and any(f is not None for f in filters):
        raise CliError("bulk: give --ids or filters (--status, --priority, --type, -q), not both")
    body: dict[str, Any] = {"action": args.action}
    if args.ids:
        body["ids"] = args.ids
    else:
        flt = {"status": args.status, "priority": args.priority, "type": args.type, "q": args.q}
        body["filter"] = {k: v for k, v in flt.items() if v is not None}
    if args.reason is not None:
        body["reason"] = args.reason
    return body


def _selection(body: dict[str, Any]) -> str:
    if "ids" in body:
        return f"{len(body['ids'])} id(s)"
    flt = body["filter"]
    parts = [f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in flt.items()]
    return "filter " + (" ".join(parts) if parts else "(every job)")


def run(args: argparse.Namespace) -> int:
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    body = _body(args)
    plan = _request("POST", "/jobs/bulk", json={**body, "dry_run": True}).json()
    matched, would = plan["matched"], plan["acted"]
    print(
        f"{matched} job(s) match {_selection(body)}; {args.action} applies to {would}"
        f" ({len(plan['refused'])} would be refused)",
        file=sys.stderr,
    )
    if matched == 0:
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError("bulk: not a terminal, so not asking: pass --yes to act")
        answer = input(f"{args.action} {matched} job(s)? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("nothing done", file=sys.stderr)
            return 1
    out = _request("POST", "/jobs/bulk", json=body).json()
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for r in out["refused"]:
            print(f"refused {r['id']}: {r['reason']}")
        print(
            f"{args.action}: {out['acted']} of {out['matched']} acted,"
            f" {len(out['refused'])} refused"
        )
    return 0 if not out["refused"] else 3

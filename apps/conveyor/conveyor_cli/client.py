"""CLI commands that talk to the API (``CONVEYOR_API_URL``) and the notifier feed."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

API_URL = os.environ.get("CONVEYOR_API_URL", "http://127.0.0.1:8000")
EXIT = {"completed": 0, "failed": 1, "stopped": 2}


class CliError(Exception):
    pass


def auth_headers() -> dict[str, str]:
    """``Authorization: Bearer $CONVEYOR_TOKEN`` when that is set (an API with tokens needs
    one: a ``read`` token lists and watches, an ``operate`` token also acts); else none."""
    token = os.environ.get("CONVEYOR_TOKEN", "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def _notifier_url() -> str:
    explicit = os.environ.get("CONVEYOR_NOTIFIER_URL")
    if explicit:
        return explicit
    host = urlsplit(API_URL).hostname or "127.0.0.1"
    return f"ws://{host}:8001/ws"


def _request(method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {**auth_headers(), **kwargs.pop("headers", {})}
    try:
        response = httpx.request(
            method, API_URL + "/api/v1" + path, timeout=30, headers=headers, **kwargs
        )
    except httpx.HTTPError as e:
        raise CliError(f"cannot reach the API at {API_URL}: {e} (is `make up` running?)") from e
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise CliError(f"{response.status_code}: {detail}")
    return response


def _line(job: dict[str, Any]) -> str:
    progress = f"{job['progress']:5.1f}%"
    return (
        f"{job['id']}  {job['status']:<9} {job['priority']:<7} {job['type']:<10} "
        f"{progress}  attempt {job['attempt']}/{job['max_attempts']}  {job['created_at']}"
    )


def _details(job: dict[str, Any]) -> str:
    """``conveyor show``: one field a line, then one line per attempt."""
    lines = [
        f"{k:>15}: {json.dumps(v) if isinstance(v, dict | list) else v}"
        for k, v in job.items()
        if k != "attempts"
    ]
    for a in job.get("attempts", []):
        error = f"  {a['error']['type']}: {a['error']['message']}" if a.get("error") else ""
        then = f"  -> {a['next_cause']}" if a.get("next_cause") else ""
        lines.append(
            f"{'attempt ' + str(a['attempt']):>15}: {a['outcome']:<9} {a['worker_id'] or '-'}"
            f"  {a['started_at'] or '-'} .. {a['finished_at'] or '-'}{error}{then}"
        )
    return "\n".join(lines)


OPERATOR_FIELDS = ("reason", "request_id", "client_address")
"""What an operator event's data says beside its actor: shown in columns of their own."""
HISTORY_HEADER = (
    f"{'SEQ':>8}  {'AT':<27} {'TYPE':<18} {'WHO':<24} {'FROM':<15} {'REQUEST':<16} DETAILS"
)


def _history_line(ev: dict[str, Any]) -> str:
    """One event of ``conveyor history``: sequence, time, type, who (the actor: the
    principal or the worker), the client's address, the request id, then the reason and the
    rest of the data."""
    data = dict(ev.get("data") or {})
    reason, request_id, client = (data.pop(k, None) for k in OPERATOR_FIELDS)
    details = json.dumps(data) if data else ""
    if reason:
        details = f"reason: {json.dumps(reason, ensure_ascii=False)}" + (
            f"  {details}" if details else ""
        )
    return (
        f"{ev['seq']:>8}  {ev['at']:<27} {ev['type']:<18} {ev['actor']:<24} {client or '-':<15}"
        f" {request_id or '-':<16} {details}"
    ).rstrip()


def _bar(percent: float, message: str | None, status: str) -> str:
    filled = int(percent / 100 * 30)
    return f"\r[{'#' * filled}{'-' * (30 - filled)}] {percent:5.1f}% {status:<9} {message or ''}"


def feed(job_id: str | None, since: int | None) -> Iterator[dict[str, Any]]:
    """Events from the notifier, reconnecting with ``since`` after any disconnect (a 1013 for
    a slow reader, a notifier restart), so none is missed or repeated."""
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
    from websockets.sync.client import connect

    delay = 0.2
    while True:
        query = {k: v for k, v in {"job_id": job_id, "since": since}.items() if v is not None}
        url = _notifier_url() + (f"?{urlencode(query)}" if query else "")
        try:
            # the token goes as a header, never in the URL (which error messages print)
            with connect(url, open_timeout=10, additional_headers=auth_headers()) as ws:
                delay = 0.2
                for raw in ws:
                    event: dict[str, Any] = json.loads(raw)
                    since = event["seq"]
                    yield event
        except ConnectionClosed as e:
            if e.rcvd is not None and e.rcvd.code in (4401, 4403):
                raise CliError(
                    f"the notifier refused the token ({e.rcvd.code}: {e.rcvd.reason}); "
                    "set CONVEYOR_TOKEN to a configured token"
                ) from e
            if e.rcvd is not None and e.rcvd.code == 1008:
                raise CliError(f"the notifier refused the request: {e.rcvd.reason}") from e
            if e.rcvd is not None and e.rcvd.reason.startswith("replay too large"):
                raise CliError(
                    f"the notifier cannot replay that much ({e.rcvd.reason}); use a later --since"
                ) from e
        except InvalidURI as e:
            raise CliError(f"bad notifier URL {url}: {e}") from e
        except (OSError, InvalidHandshake, TimeoutError) as e:
            print(f"conveyor: notifier unreachable at {url} ({e}); retrying", file=sys.stderr)
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def _history(job_id: str) -> Iterator[dict[str, Any]]:
    """The job's events, page after page."""
    after: int | None = 0
    while after is not None:
        params = {"after_seq": after, "limit": 10_000}
        page = _request("GET", f"/jobs/{job_id}/events", params=params).json()
        yield from page["items"]
        after = page["next"]


def _follow(job_id: str) -> str:
    """Print a live progress bar until the job is finished; returns the final status."""
    status, percent, message = "pending", 0.0, None
    tty = sys.stderr.isatty()
    for event in feed(job_id, 0):
        data = event.get("data", {})
        kind = event["type"]
        if kind == "job.started":
            status, percent, message = "running", 0.0, None
        elif kind == "job.progressed":
            percent, message = data.get("progress", percent), data.get("message")
        elif kind == "job.completed":
            status, percent = "completed", 100.0
        elif kind == "job.failed":
            status = "pending" if data.get("retry") else "failed"
            message = data.get("error", {}).get("message")
        elif kind == "job.stopped":
            status = "stopped"
        elif kind in ("job.restarted",):
            status, percent = "pending", 0.0
        if tty:
            print(_bar(percent, message, status), end="", file=sys.stderr, flush=True)
        else:
            print(f"{kind} {percent:.0f}% {message or ''}".rstrip(), file=sys.stderr)
        if status in EXIT:
            break
    if tty:
        print(file=sys.stderr)
    return status


def guarded(command: Callable[[], int]) -> int:
    """A command's exit status: a :class:`CliError` printed as one line and 1, Ctrl-C 130."""
    try:
        return command()
    except CliError as e:
        print(f"conveyor: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run(command: str, args: argparse.Namespace) -> int:
    return guarded(lambda: _run(command, args))


def _run(command: str, args: argparse.Namespace) -> int:
    if command == "submit":
        try:
            payload = json.loads(args.payload)
        except json.JSONDecodeError as e:
            raise CliError(f"--payload is not JSON: {e}") from e
        body: dict[str, Any] = {"type": args.type, "priority": args.priority, "payload": payload}
        if args.max_attempts is not None:
            body["max_attempts"] = args.max_attempts
        if args.timeout is not None:
            body["timeout_s"] = args.timeout
        headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
        job = _request("POST", "/jobs", json=body, headers=headers).json()
        print(job["id"])
        if args.wait:
            status = _follow(job["id"])
            final = list(_history(job["id"]))
            print(f"{status}: {json.dumps(final[-1]['data'])}")
            return EXIT.get(status, 1)
        return 0
    if command == "list":
        params = {
            k: v
            for k, v in {
                "status": args.status,
                "priority": args.priority,
                "type": args.type,
                "q": args.query,
                "limit": args.limit,
            }.items()
            if v is not None
        }
        page = _request("GET", "/jobs", params=params).json()
        if args.json:
            print(json.dumps(page, indent=2))
        else:
            for job in page["items"]:
                print(_line(job))
        return 0
    if command == "show":
        params = {"as_of": args.as_of} if args.as_of is not None else {}
        job = _request("GET", f"/jobs/{args.id}", params=params).json()
        print(json.dumps(job, indent=2) if args.json else _details(job))
        return 0
    if command in ("stop", "restart"):
        reason = {"reason": args.reason} if args.reason is not None else None
        job = _request("POST", f"/jobs/{args.id}/{command}", json=reason).json()
        print(_line(job))
        return 0
    if command == "delete":
        reason = {"reason": args.reason} if args.reason is not None else None
        _request("DELETE", f"/jobs/{args.id}", json=reason)
        print(f"deleted {args.id}")
        return 0
    if command == "history":
        if args.json:
            for ev in _history(args.id):
                print(json.dumps(ev))
            return 0
        print(HISTORY_HEADER)
        for ev in _history(args.id):
            print(_history_line(ev))
        return 0
    if command == "watch":
        for event in feed(args.job_id, args.since):
            print(json.dumps(event), flush=True)
        return 0
    raise CliError(f"unknown command {command}")

"""Queries: ``GET /api/v1/jobs`` latency for the dashboard's filter combinations with
``scale.query_jobs`` jobs in the read model.

What is measured is the query, so the read model is filled directly (COPY into ``jobs``) with
a realistic mix: mostly completed jobs, a few failed, stopped, pending and running ones, a
fifth ``high`` priority, ``noop`` and ``sleep`` jobs (the built-in types) with their payloads,
created over 30 days with time-sortable ids. Then the real api process answers; each
combination is asked ``REQUESTS`` times in a row after a warm-up (values that vary, such as
id prefixes, differ from one request to the next), client-side time from request to parsed
response; p50/p99/max per combination, the median of each over ``scale.repeats`` runs.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from conveyor_bench.harness import Cluster, Scale, Services, wait_until
from conveyor_bench.stats import latencies, latency_runs

REQUESTS = 200
WARMUP = 20
SMOKE_REQUESTS = 20
BUDGET_S = 8.0
"""Time one combination may take in one run: a slow one is measured on fewer requests."""

STATUSES = [("completed", 0.88), ("failed", 0.06), ("stopped", 0.02), ("pending", 0.025)]
"""Status mix (the rest, 1.5 %, running)."""
DAYS = 30
SHIFT_H = 6
"""Workers come and go: two of them run the jobs of each 6-hour shift."""

COLUMNS = [
    "id", "type", "priority", "payload", "status", "progress", "message", "attempt",
    "max_attempts", "timeout_s", "run_at", "result", "error", "worker_id", "stop_requested",
    "created_at", "started_at", "finished_at", "updated_at", "version", "run", "attempts_base",
    "run_base",
]  # fmt: skip
"""The columns the generated rows fill (the others keep their defaults)."""

_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)


def ulid(ms: int, rng: random.Random) -> str:
    """A job id as the api makes them: 48-bit time and 80 random bits, Crockford base32."""
    value = (ms << 80) | rng.getrandbits(80)
    # 160 bits = 32 base32 characters; the first six stand for the 30 zero bits on top
    return base64.b32encode(value.to_bytes(20, "big"))[6:].translate(_CROCKFORD).decode()


def _status(roll: float) -> str:
    for status, share in STATUSES:
        if roll < share:
            return status
        roll -= share
    return "running"


@dataclass
class Data:
    """The generated read model, and what the requests pick their values from."""

    records: list[tuple[Any, ...]]
    ids: list[str]
    seconds: list[float]
    """The sleep jobs' ``seconds`` (text that few payloads hold)."""
    orders: list[int]
    """The order numbers inside the failed jobs' error messages (text only one error holds)."""
    workers: list[str]
    now: datetime


def worker_of(created: datetime, rng: random.Random) -> str:
    shift = int(created.timestamp()) // (SHIFT_H * 3600)
    return f"worker-{shift:06d}-{rng.randrange(2)}"


def rows(n: int, seed: int = 11) -> Data:
    """``n`` job rows (oldest first) as COPY records of :data:`COLUMNS`, over :data:`DAYS`."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    begin = now - timedelta(days=DAYS)
    step = DAYS * 86_400_000 / n
    begin_ms = int(begin.timestamp() * 1000)
    data = Data([], [], [], [], [], now)
    workers: set[str] = set()
    for i in range(n):
        ms = begin_ms + int(i * step)
        job_id = ulid(ms, rng)
        created = begin + timedelta(milliseconds=i * step)
        status = _status(rng.random())
        sleep = rng.random() < 0.3
        if sleep:
            s = round(rng.uniform(0, 3600), 1)
            data.seconds.append(s)
            payload = f'{{"busy": false, "fail": false, "steps": 10, "seconds": {s}}}'
        else:
            payload = "{}"
        started = created + timedelta(milliseconds=5) if status != "pending" else None
        run_ms = rng.expovariate(1 / 200) if sleep else rng.expovariate(1 / 2)
        finished = (
            created + timedelta(milliseconds=5 + run_ms)
            if status in ("completed", "failed", "stopped")
            else None
        )
        error = None
        if status == "failed":
            order = rng.randrange(10**9)
            data.orders.append(order)
            error = (
                '{"type": "RuntimeError", "message": "card declined for order '
                f'{order}", "traceback": null}}'
            )
        worker = None if status == "pending" else worker_of(created, rng)
        if worker is not None:
            workers.add(worker)
        attempt = 0 if status == "pending" else 1
        data.records.append(
            (
                job_id, "sleep" if sleep else "noop", "high" if rng.random() < 0.2 else "regular",
                payload, status, 100.0 if status == "completed" else 0.0, None, attempt, 1,
                None, None, None, error, worker,
                False, created, started, finished, finished or started or created,
                1 + attempt + (status in ("completed", "failed", "stopped")), 1, 0, 0,
            )
        )  # fmt: skip
        data.ids.append(job_id)
    data.workers = sorted(workers)
    return data


async def fill(database_url: str, records: list[tuple[Any, ...]]) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        chunk = 100_000
        for start in range(0, len(records), chunk):
            await conn.copy_records_to_table(
                "jobs", records=records[start : start + chunk], columns=COLUMNS
            )
        await conn.execute("VACUUM ANALYZE jobs")
    finally:
        await conn.close()


Params = dict[str, str]


def _at(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def combinations(
    data: Data, rng: random.Random, page2: Callable[[Params], str]
) -> dict[str, Callable[[], Params]]:
    """Each combination: a function giving the next request's query parameters. Time ranges
    and workers are drawn over the whole 30 days, so most of them point into old rows."""
    first_failed = page2({"status": "failed"})
    first_all = page2({})
    now = data.now

    def ago(days: float) -> datetime:
        return now - timedelta(days=days)

    def some_day() -> datetime:
        return ago(rng.uniform(1, DAYS - 1))

    def window(name: str, hours: float) -> Params:
        start = some_day()
        return {f"{name}_after": _at(start), f"{name}_before": _at(start + timedelta(hours=hours))}

    return {
        "none": lambda: {},
        "status": lambda: {"status": "completed"},
        "status_rare": lambda: {"status": "running"},
        "status_list": lambda: {"status": "failed,stopped"},
        "status_list_rare": lambda: {"status": "pending,running"},
        "priority": lambda: {"priority": "high"},
        "type": lambda: {"type": "sleep"},
        "worker": lambda: {"worker": rng.choice(data.workers)},
        "q_id_prefix": lambda: {"q": rng.choice(data.ids)[:12]},
        "q_id_prefix_short": lambda: {"q": rng.choice(data.ids)[:2]},
        "q_payload_common": lambda: {"q": "fail"},
        "q_payload_rare": lambda: {"q": f"{rng.choice(data.seconds)}"},
        "q_error_rare": lambda: {"q": f"order {rng.choice(data.orders)}"},
        "q_miss": lambda: {"q": f"nothing-{rng.randrange(10**9)}"},
        "created_after_recent": lambda: {"created_after": _at(ago(1 / 24))},
        "created_before_old": lambda: {"created_before": _at(some_day())},
        "created_window": lambda: window("created", 1),
        "created_window_day": lambda: window("created", 24),
        "finished_after_recent": lambda: {"finished_after": _at(ago(1 / 144))},
        "finished_before_old": lambda: {"finished_before": _at(some_day())},
        "finished_window": lambda: window("finished", 1),
        "finished_window_day": lambda: window("finished", 24),
        "status_priority_type": lambda: {
            "status": "completed",
            "priority": "high",
            "type": "sleep",
        },
        "status_list_priority_q": lambda: {
            "status": "failed,stopped",
            "priority": "high",
            "q": "seconds",
        },
        "failed_q_error_rare": lambda: {
            "status": "failed",
            "q": f"order {rng.choice(data.orders)}",
        },
        "worker_status_created": lambda: {
            "worker": rng.choice(data.workers),
            "status": "completed",
            "created_before": _at(now),
        },
        "type_finished_window": lambda: {"type": "sleep", **window("finished", 6)},
        "cursor_page2": lambda: {"cursor": first_all},
        "status_cursor_page2": lambda: {"status": "failed", "cursor": first_failed},
    }


def measure(api_url: str, data: Data, n: int) -> dict[str, Any]:
    """One run: every combination asked ``n`` times; latencies per combination."""
    rng = random.Random(5)
    out: dict[str, Any] = {}
    with httpx.Client(base_url=api_url, timeout=30) as http:

        def get(params: Params) -> dict[str, Any]:
            response = http.get("/api/v1/jobs", params=params)
            if response.status_code != 200:
                raise RuntimeError(f"GET /jobs {params}: {response.status_code} {response.text}")
            body: dict[str, Any] = response.json()
            return body

        def page2(params: Params) -> str:
            cursor = get(params)["next_cursor"]
            assert isinstance(cursor, str)
            return cursor

        for name, params in combinations(data, rng, page2).items():
            deadline = time.perf_counter() + BUDGET_S
            for _ in range(min(WARMUP, n)):
                get(params())
                if time.perf_counter() > deadline - BUDGET_S / 2:
                    break
            samples: list[float] = []
            while len(samples) < n and (len(samples) < 5 or time.perf_counter() < deadline):
                p = params()
                t0 = time.perf_counter()
                get(p)
                samples.append((time.perf_counter() - t0) * 1000)
            out[name] = latencies(samples)
    return out


def _ready(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def run(scale: Scale) -> dict[str, Any]:
    n = SMOKE_REQUESTS if scale.smoke else REQUESTS
    with Cluster("queries") as cluster:
        t0 = time.monotonic()
        data = rows(scale.query_jobs)
        asyncio.run(fill(cluster.env["DATABASE_URL"], data.records))
        data.records.clear()
        fill_s = time.monotonic() - t0
        print(f"  read model filled with {len(data.ids)} jobs in {fill_s:.1f}s", flush=True)
        services = Services(cluster, workers=0)
        try:
            services.start("api", "api", CONVEYOR_API_PORT=str(services.api_port))
            wait_until(lambda: _ready(services.api_url), 60, "the api is ready", 0.05)
            runs = [measure(services.api_url, data, n) for _ in range(scale.repeats)]
        finally:
            services.stop()
    combos = {name: latency_runs([r[name] for r in runs]) for name in runs[0]}
    worst = max(c["p99"] for c in combos.values())
    return {
        "jobs": scale.query_jobs,
        "requests_per_run": n,
        "fill_s": round(fill_s, 1),
        "worst_p99_ms": worst,
        "ms": combos,
    }

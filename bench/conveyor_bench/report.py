"""The figures the issue asks for, the targets they are held to, and the README's table."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def peer_throughput(results: dict[str, Any]) -> dict[str, float]:
    peers = results.get("peers", {}).get("peers", {})
    return {name: p["throughput_jobs_per_s"]["median"] for name, p in peers.items()}


def summarise(results: dict[str, Any]) -> None:
    """Add the top-level ratio (when Conveyor's throughput and a peer's ran) and the target
    checks to ``results``; ``--only`` runs any subset of the scenarios."""
    peers = peer_throughput(results)
    if peers and "throughput" in results:
        conveyor = results["throughput"]["jobs_per_s"]["median"]
        best = max(peers, key=peers.__getitem__)
        results["throughput_ratio_vs_best_peer"] = round(conveyor / peers[best], 2)
        results["best_peer"] = best
    results["targets"] = [
        {"target": name, "goal": goal, "measured": measured, "met": met}
        for name, goal, measured, met in _targets(results)
    ]


def _targets(r: dict[str, Any]) -> list[tuple[str, str, Any, bool]]:
    found: list[tuple[str, str, Any, bool]] = []
    if "throughput" in r:
        jobs = r["throughput"]["jobs_per_s"]["median"]
        found.append(("throughput", ">= 1,500 jobs/s", jobs, jobs >= 1500))
        cpu = r["throughput"]["cpu_ms_per_job"]["total"]
        found.append(("CPU per job, all processes", "<= 0.6 ms", cpu, cpu <= 0.6))
    if "throughput_ratio_vs_best_peer" in r:
        ratio = r["throughput_ratio_vs_best_peer"]
        found.append(("throughput vs best peer", ">= 3x", ratio, ratio >= 3))
    if "latency" in r:
        started, ws = r["latency"]["started_ms"], r["latency"]["ws_completed_ms"]
        found.append(("submit -> started p50", "<= 2 ms", started["p50"], started["p50"] <= 2))
        found.append(("submit -> started p99", "<= 5 ms", started["p99"], started["p99"] <= 5))
        found.append(("submit -> ws job.completed p99", "<= 10 ms", ws["p99"], ws["p99"] <= 10))
    if "replay" in r:
        rate = r["replay"]["events_per_s"]["median"]
        found.append(("replay", ">= 20,000 events/s", rate, rate >= 20_000))
    if "queries" in r:
        worst = r["queries"]["worst_p99_ms"]
        found.append(("list queries p99 (worst filter)", "<= 50 ms", worst, worst <= 50))
    if "fanout" in r:
        p99 = r["fanout"]["latency_ms"]["p99"]
        found.append(("fan-out p99", "<= 100 ms", p99, p99 <= 100))
    if "footprint" in r:
        rss = r["footprint"]["rss_mb"]
        worker = max(v["median"] for k, v in rss.items() if k.startswith("worker"))
        found.append(("worker idle RSS", "<= 60 MB", worker, worker <= 60))
    return found


def table(r: dict[str, Any]) -> str:
    """Markdown: Conveyor and the peers side by side, then every target."""
    lines = [
        f"Measured by `make bench` on {r['date'][:10]} ({r.get('machine', '')}); "
        f"full results in `bench/results/`, method in `docs/performance.md`.",
        "",
        "| system | throughput, jobs/s (median, min-max) | submit → started p50 / p99 |",
        "|---|---|---|",
    ]
    tp, lat = r["throughput"]["jobs_per_s"], r["latency"]["started_ms"]
    lines.append(
        f"| **Conveyor** (fsync on every write) | **{tp['median']:,.0f}** "
        f"({tp['min']:,.0f}-{tp['max']:,.0f}) | {lat['p50']} / {lat['p99']} ms |"
    )
    for name, p in r.get("peers", {}).get("peers", {}).items():
        t, lm = p["throughput_jobs_per_s"], p["latency_ms"]
        lines.append(
            f"| {name.capitalize()} {p['version']} | {t['median']:,.0f} "
            f"({t['min']:,.0f}-{t['max']:,.0f}) | {lm['p50']} / {lm['p99']} ms |"
        )
    lines += ["", "| target | goal | measured | met |", "|---|---|---|---|"]
    for t in r["targets"]:
        lines.append(
            f"| {t['target']} | {t['goal']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |"
        )
    return "\n".join(lines)


def update_readme(r: dict[str, Any]) -> None:
    text = README.read_text()
    if START not in text:
        raise RuntimeError(f"README.md has no {START} … {END} section")
    block = f"{START}\n{table(r)}\n{END}"
    README.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), block, text, flags=re.S))

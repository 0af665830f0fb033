"""``python -m conveyor_bench``: run the scenarios, print and write the results."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conveyor_bench import report
from conveyor_bench.harness import BENCH_DIR, WORK_DIR, Scale

SCENARIOS = [
    "throughput",
    "latency",
    "peers",
    "scaleout",
    "replay",
    "queries",
    "fanout",
    "footprint",
]
"""Each is a module of this package with ``run(scale) -> dict`` (JSON-ready results), run in
this order: Conveyor's throughput and latency, then the peers', back to back."""
RESULTS = BENCH_DIR / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conveyor_bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument("--only", help="comma list of scenarios: " + ",".join(SCENARIOS))
    parser.add_argument(
        "--out", type=Path, help="write the results here (default: bench/results/<date>.json)"
    )
    args = parser.parse_args(argv)
    scale = Scale.smoke_run() if args.smoke else Scale()
    chosen = args.only.split(",") if args.only else list(SCENARIOS)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "smoke": scale.smoke,
    }
    began = time.monotonic()
    if scale.smoke:
        # Only that every scenario still runs end to end: all at once, to be quick.
        with ThreadPoolExecutor(len(chosen)) as pool:
            done = pool.map(lambda name: (name, _run(name, scale)), chosen)
            results.update(done)
    else:
        for name in chosen:
            results[name] = _run(name, scale)
    results["wall_s"] = round(time.monotonic() - began, 1)
    report.summarise(results)
    out = args.out or (
        WORK_DIR / "smoke.json" if scale.smoke else RESULTS / f"{results['date'][:10]}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {out}")
    for t in results["targets"]:
        print(f"  {'met ' if t['met'] else 'MISS'} {t['target']}: {t['measured']} ({t['goal']})")
    if not scale.smoke and args.only is None:
        report.update_readme(results)
        print("README.md's table updated")
    return 0


def _run(name: str, scale: Scale) -> dict[str, Any]:
    began = time.monotonic()
    print(f"== {name}", flush=True)
    figures: dict[str, Any] = importlib.import_module(f"conveyor_bench.{name}").run(scale)
    print(f"== {name} ({time.monotonic() - began:.0f}s)", json.dumps(figures, indent=1), flush=True)
    return figures


def machine() -> str:
    cpus = os.cpu_count()
    return f"{cpus} cores, Python {platform.python_version()}, {platform.system()}"


if __name__ == "__main__":
    sys.exit(main())

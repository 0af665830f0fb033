"""``python -m conveyor_bench``: run the scenarios, print and write the results."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conveyor_bench.harness import Scale

SCENARIOS = ["throughput", "latency", "scaleout", "replay", "queries", "fanout", "footprint"]
"""Each is a module of this package with ``run(scale) -> dict`` (JSON-ready results)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conveyor_bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument("--only", help="comma list of scenarios: " + ",".join(SCENARIOS))
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    args = parser.parse_args(argv)
    scale = Scale.smoke_run() if args.smoke else Scale()
    chosen = args.only.split(",") if args.only else list(SCENARIOS)
    results: dict[str, Any] = {"date": datetime.now(UTC).isoformat(), "smoke": scale.smoke}
    began = time.monotonic()
    for name in chosen:
        t0 = time.monotonic()
        print(f"== {name}", flush=True)
        scenario = importlib.import_module(f"conveyor_bench.{name}")
        results[name] = scenario.run(scale)
        print(json.dumps(results[name], indent=1), f"({time.monotonic() - t0:.0f}s)", flush=True)
    results["wall_s"] = round(time.monotonic() - began, 1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

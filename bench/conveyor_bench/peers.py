"""The peers (Celery, Dramatiq, Taskiq) in their own environment, measured by
``bench/peers/run.py`` in the same run as Conveyor (see that file for the method)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from conveyor_bench.harness import BENCH_DIR, WORK_DIR, Scale

PEERS_DIR = BENCH_DIR / "peers"
PEERS_PYTHON = WORK_DIR / "peers-venv" / "bin" / "python"


def install() -> None:
    """The peers' virtual environment and Debian's redis-server (idempotent, fast when
    already there)."""
    subprocess.run(["bash", str(PEERS_DIR / "install.sh")], check=True)


def run(scale: Scale) -> dict[str, Any]:
    install()
    with tempfile.TemporaryDirectory(dir=WORK_DIR) as tmp:
        out = Path(tmp) / "peers.json"
        args = [str(PEERS_PYTHON), str(PEERS_DIR / "run.py"), "--out", str(out)]
        if scale.smoke:
            args.append("--smoke")
        else:
            args += [
                "--jobs",
                str(scale.throughput_jobs),
                "--latency-jobs",
                str(scale.latency_jobs),
                "--repeats",
                str(scale.repeats),
            ]
        done = subprocess.run(args, capture_output=True, text=True, timeout=1200)
        print(done.stdout, end="", flush=True)
        if done.returncode != 0:
            # Its own words first: the caller's traceback would push them out of a log's tail.
            raise RuntimeError(
                f"bench/peers/run.py exited {done.returncode}:\n{done.stderr[-3000:]}"
                f"\nits last output:\n{done.stdout[-1500:]}"
            )
        results: dict[str, Any] = json.loads(out.read_text())
        return results

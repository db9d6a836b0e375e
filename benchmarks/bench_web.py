"""The daemon with its web server: start-up time and peak memory, and the dashboard under load.

    .venv/bin/python benchmarks/bench_web.py                 # start-up and memory of `trader demo`
    .venv/bin/python benchmarks/bench_web.py --clients 1000  # also: 1,000 SSE streams while it ticks

Start-up: from `trader demo` being spawned to `/health` first answering (any status), on a free
port, median of --runs fresh processes. Memory: the demo's peak RSS over `--weeks 2 --speed max`
(ru_maxrss of the child). Both are the daemon as a user starts it (imports, ledger, exchange,
web server); `trader demo` serves the dashboard exactly as `trader run` does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
TRADER = [sys.executable, "-c", "from trader.cli import main; raise SystemExit(main())"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_run(weeks: int) -> tuple[float, float, int]:
    """(seconds to the first /health answer, seconds in all, peak RSS in MB)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PORT=str(port))
        began = time.monotonic()
        child = subprocess.Popen([*TRADER, "demo", "--weeks", str(weeks), "--speed", "max",
                                  "--dir", f"{tmp}/demo"], cwd=tmp, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        first = None
        while child.poll() is None and first is None:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1, trust_env=False)
                first = time.monotonic() - began
            except httpx.HTTPError:
                time.sleep(0.02)
        _, status, usage = os.wait4(child.pid, 0)
        total = time.monotonic() - began
        return first or float("nan"), total, usage.ru_maxrss // 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--weeks", type=int, default=2)
    args = parser.parse_args()
    rows = [one_run(args.weeks) for _ in range(args.runs)]
    result = {"health_after_s": round(statistics.median(r[0] for r in rows), 3),
              "demo_total_s": round(statistics.median(r[1] for r in rows), 2),
              "peak_rss_mb": statistics.median(r[2] for r in rows)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`trader demo` as a user runs it: a process, on $PORT, in its own folder, stopping by itself
after N simulated weeks or at Ctrl-C, and leaving a real ledger and data directory alone."""

from __future__ import annotations

import gzip
import json
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd

from trader.demo import CANDLES

from ..conftest import BTC_1H
from ..reliability.harness import clean_env, free_port


def start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, int, Path, dict[str, str]]:
    work, port = tmp_path / "work", free_port()
    work.mkdir()
    # a user's own data directory and ledger, which the demo must not touch
    env = clean_env(PORT=str(port), TRADER_DATA_DIR=str(tmp_path / "real"),
                    DATABASE_URL=f"sqlite:///{tmp_path / 'real.db'}", EXCHANGE_API_KEY="real-key",
                    EXCHANGE_API_SECRET="real-secret")
    process = subprocess.Popen([sys.executable, "-m", "trader.cli", "demo", "--dir", "demo", *args], cwd=work,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process, port, work, env


def get(port: int, path: str) -> tuple[int, dict] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return None  # not serving (yet, or any more)


def test_demo_trades_reviews_and_stops_by_itself_after_n_weeks(tmp_path):
    started = time.monotonic()
    process, port, work, _ = start(tmp_path, "--weeks", "2", "--speed", "max")
    health, status = [], []
    while process.poll() is None and time.monotonic() - started < 90:
        if (answer := get(port, "/health")) is not None:
            health.append(answer)
        if (answer := get(port, "/status")) is not None:
            status.append(answer)
        time.sleep(0.2)
    out, err = process.communicate(timeout=30)
    elapsed = time.monotonic() - started
    assert process.returncode == 0, err
    assert "Traceback" not in err and "Traceback" not in out
    assert elapsed < 45, f"two simulated weeks took {elapsed:.0f} s"

    # /health and /status were served while it ran, on the simulated clock
    assert any(code == 200 and body["ok"] for code, body in health), health[-3:]
    live = [body for code, body in status if code == 200 and body.get("last_tick")]
    assert live and all(body["mode"] == "live" and body["symbol"] == "BTC/USDT" for body in live)
    assert live[-1]["last_tick"].startswith("2017-")

    demo = work / "demo"
    assert sorted(p.name for p in work.iterdir()) == ["demo"]  # nothing else in the working folder
    assert not (tmp_path / "real").exists() and not (tmp_path / "real.db").exists()
    # the demo approves out loud what a user approves by hand
    assert "approves live trading" in out and "approves Hermes' apply mode" in out
    assert "finished after 2 of 2 simulated week(s)" in out and f"reports: {Path('demo') / 'reports'}" in out

    with sqlite3.connect(demo / "trader.db") as db:
        modes = [m for (m,) in db.execute("select mode from reviews order by id")]
        fills = db.execute("select count(*) from fills where book = 'main'").fetchone()[0]
        approvals = [k for (k,) in db.execute("select kind from approvals order by id")]
        last = db.execute("select message from events where kind = 'stopped' order by id desc limit 1").fetchone()[0]
    assert last == "stopped: the run came to its end"  # not a signal: it finished its weeks
    assert modes == ["read_only", "apply"]
    assert fills > 0
    assert approvals == ["live", "hermes_apply"]
    reports = sorted(p.name for p in (demo / "reports").glob("*.md"))
    assert len(reports) == 2 and reports[0].endswith("review-1.md") and reports[1].endswith("review-2.md")
    # Hermes' rewrites and its copies of files stay in the demo's folder
    assert (demo / "config" / "strategy.yaml").exists()


def test_ctrl_c_stops_the_demo_cleanly(tmp_path):
    process, port, work, _ = start(tmp_path, "--speed", "40")
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        answer = get(port, "/status")
        if answer is not None and answer[0] == 200 and answer[1].get("last_tick"):
            break
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()[1]
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "trader demo stopped after 0 of 12 simulated week(s)" in out
    assert get(port, "/health") is None  # the health server is gone with it
    with sqlite3.connect(work / "demo" / "trader.db") as db:
        last = db.execute("select kind, message from events order by id desc limit 1").fetchone()
    assert last == ("stopped", "stopped by signal")


def test_the_bundled_candles_are_the_projects_real_ones():
    with gzip.open(CANDLES, "rt") as shipped:
        assert shipped.read() == BTC_1H.read_text()
    assert CANDLES.stat().st_size < 100_000
    assert pd.read_csv(CANDLES).shape == (3000, 6)


def test_a_week_whose_review_was_skipped_says_why(tmp_path):
    import io
    from types import SimpleNamespace

    from trader.demo import FastForward
    from trader.ledger import open_ledger, sessions

    problem = "Hermes' review skipped: strategy.yaml: invalid strategy file; line 22, params.fast: ..."
    service = SimpleNamespace(factory=sessions(open_ledger(f"sqlite:///{tmp_path / 'trader.db'}")),
                              config=SimpleNamespace(capital=10_000), review_problem=problem)
    exchange = SimpleNamespace(clock=SimpleNamespace(now=lambda: pd.Timestamp("2017-08-07 06:00", tz="UTC")))
    out = io.StringIO()
    FastForward(service, exchange, 0, [1], None, tmp_path, out)._reviewed(1)
    assert problem in out.getvalue() and "the log says why" not in out.getvalue()

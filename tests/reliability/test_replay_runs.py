"""Replays and the CLI around the ledger (issue 12, items 8 and 9): two replays in one data
directory never destroy each other's ledger, nonsense speeds are refused, and a ledger that
is locked or cannot be written is reported in one line, never as a traceback."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time

import pytest

from . import capped
from . import harness as H
from . import mutations as M

DATA = H.ROOT / "tests/data/btcusd-1h.csv"


def replay_args(*extra: str, data=DATA) -> list[str]:
    return ["run", "--replay", str(data), "--config", str(M.STRATEGY_FILE), "--goals", str(M.GOALS_FILE), *extra]


@pytest.mark.slow  # two replays, one paced: 8 s
def test_a_second_replay_in_the_same_data_directory_is_refused(tmp_path):
    env = H.clean_env(TRADER_DATA_DIR=str(tmp_path))
    data = tmp_path / "candles.csv"  # 300 bars at 150 a second: the first replay runs 2 s
    data.write_text("".join(DATA.read_text().splitlines(keepends=True)[:301]))
    first = subprocess.Popen([H.PYTHON, "-m", "trader.cli", *replay_args("--speed", "150", data=data)], cwd=H.ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "replay.db").exists():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        second = capped.run(replay_args("--speed", "max", data=data), env)
        assert second.returncode == 2 and "another replay is running" in second.stderr, second.stderr[-2000:]
        out, err = first.communicate(timeout=60)
    finally:
        first.kill()
        first.wait()
    assert first.returncode == 0, err[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    with sqlite3.connect(tmp_path / "replay.db") as db:  # the first run's ledger is whole
        (fills,) = db.execute("select count(*) from fills").fetchone()
    assert fills == summary["fills"] > 0


@pytest.mark.parametrize("speed", ["nan", *(pytest.param(s, marks=pytest.mark.slow) for s in ("1e-300", "inf", "-1"))])
def test_nonsense_speeds_are_refused(speed, tmp_path):
    done = capped.run(replay_args("--speed", speed), H.clean_env(TRADER_DATA_DIR=str(tmp_path)))
    assert done.returncode == 2 and not done.traceback and done.stderr.startswith("error: --speed: ")


@pytest.mark.slow  # waits out the ledger's 5 s busy timeout
def test_status_while_another_process_holds_the_ledger_lock(tmp_path):
    from trader.ledger import open_ledger, sessions
    from trader.ledger.models import DaemonState

    ledger = open_ledger(f"sqlite:///{tmp_path / 'trader.db'}")
    with sessions(ledger).begin() as s:
        s.add(DaemonState(book="main", state="running", mode="paper"))
    ledger.dispose()
    holder = sqlite3.connect(tmp_path / "trader.db", isolation_level=None)
    holder.execute("pragma locking_mode=exclusive")
    holder.execute("begin exclusive")  # what a long write by another process looks like
    holder.execute("update daemon_state set mode = 'paper'")
    try:
        done = capped.run(["status"], H.clean_env(TRADER_DATA_DIR=str(tmp_path)), timeout=60)
    finally:
        holder.rollback()
        holder.close()
    assert done.returncode == 1 and not done.traceback, done.stderr[-2000:]
    assert done.stderr.startswith("error: the ledger cannot be read now: database is locked")


def test_a_review_number_beyond_the_ledger_is_refused(tmp_path):
    # found by benchmarks/fuzz_hostile.py: OverflowError from SQLite
    done = capped.run(["report", "--id", "9" * 400], H.clean_env(TRADER_DATA_DIR=str(tmp_path)))
    assert done.returncode == 2 and not done.traceback and "is not a review number" in done.stderr


def test_a_file_name_too_long_is_refused(tmp_path):
    # found by benchmarks/fuzz_hostile.py: OSError from Path.exists()
    done = capped.run(["data", "check", "9" * 400], H.clean_env(TRADER_DATA_DIR=str(tmp_path)))
    assert done.returncode == 2 and not done.traceback and "File name too long" in done.stderr

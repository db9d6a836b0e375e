"""Candle files that are hostile in size (issue 12, items 2 and 5): a huge header line, a gzip
bomb, a FIFO or a device are refused with a message that says so, and a replay that is still
loading its file stops at once on SIGTERM."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import time

import pytest

from . import capped
from . import harness as H
from . import mutations as M


def backtest(data, timeout: float = 30) -> capped.Outcome:
    return capped.run(["backtest", "--config", str(M.STRATEGY_FILE), "--data", str(data)], H.clean_env(),
                      timeout=timeout)


def test_a_huge_header_line_is_refused_without_reading_it(tmp_path):
    data = tmp_path / "candles.csv"
    with data.open("wb") as handle:
        handle.write(b"timestamp" + b",open" * 20_000_000 + b"\n")  # 100 MB: it used to exhaust memory
    done = backtest(data)
    assert done.returncode == 2 and not done.traceback, done.stderr[-2000:]
    assert done.stderr.startswith(f"error: {data}: line 1 is longer than")


@pytest.mark.slow  # the same check as test_hostile_files' special files, for --data
@pytest.mark.parametrize("special", ["/dev/zero", "fifo.csv"])
def test_special_candle_files_are_refused_at_once(special, tmp_path):
    path = special
    if special == "fifo.csv":
        path = str(tmp_path / special)
        os.mkfifo(path)
    done = capped.run(["run", "--replay", path, "--config", str(M.STRATEGY_FILE)],
                      H.clean_env(TRADER_DATA_DIR=str(tmp_path)), timeout=20)
    assert not done.hung and done.returncode == 2 and not done.traceback, done.stderr[-2000:]
    assert done.stderr.startswith(f"error: {path}: not a regular file")


@pytest.mark.slow  # decompresses a gigabyte
def test_a_gzip_bomb_is_refused_as_too_large(tmp_path):
    data = tmp_path / "candles.csv.gz"
    with gzip.open(data, "wb", compresslevel=9) as handle:
        handle.write(b"timestamp,open,high,low,close,volume\n")
        for _ in range(64):
            handle.write(b"\n" * (1 << 24))  # 1 GB of blank lines in 1 MB
    done = backtest(data, timeout=120)
    assert done.returncode == 2 and not done.traceback, done.stderr[-2000:]
    assert "too large to load into memory" in done.stderr and "same number of fields" not in done.stderr


def test_sigterm_while_a_replay_loads_its_file_stops_it_at_once(tmp_path):
    data = tmp_path / "slow.csv"  # 3 million lines: seconds of parsing
    data.write_text("timestamp,open,high,low,close,volume\n" + "2017-07-01T11:00:00Z,1,1,1,1,1\n" * 3_000_000)
    process = subprocess.Popen([H.PYTHON, "-m", "trader.cli", "run", "--replay", str(data), "--config",
                                str(M.STRATEGY_FILE)], cwd=H.ROOT, env=H.clean_env(TRADER_DATA_DIR=str(tmp_path)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not _has_open(process.pid, data):  # the load has begun
            assert process.poll() is None and time.monotonic() < deadline, "the replay never opened its file"
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        process.wait(timeout=30)
        assert time.monotonic() - sent < 1.0  # the old replay parsed on for seconds, then exited
        assert process.returncode == -signal.SIGTERM
        assert not (tmp_path / "replay.db").exists()
    finally:
        process.kill()
        process.wait()
        process.stderr.close()


def _has_open(pid: int, path) -> bool:
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(path) for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False

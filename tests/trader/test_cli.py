"""The `trader` command as a user runs it: a real process, its stdout, stderr and exit code."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from trader.backtest import METRIC_KEYS

from ..conftest import BTC_1H, ROOT, STRATEGY_YAML


def trader(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trader.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def test_backtest_json_is_one_object_with_the_documented_keys():
    done = trader("backtest", "--config", STRATEGY_YAML, "--data", BTC_1H, "--json")
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert list(metrics) == list(METRIC_KEYS)
    assert metrics["trades"] == 28 and metrics["final_equity"] == pytest.approx(24707.0752066)


def test_backtest_table_plot_and_fills(tmp_path):
    png, fills = tmp_path / "equity.png", tmp_path / "fills.csv"
    done = trader("backtest", "--config", STRATEGY_YAML, "--data", BTC_1H, "--plot", png, "--fills", fills)
    assert done.returncode == 0, done.stderr
    assert "max drawdown" in done.stdout and "20.99%" in done.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert fills.read_text().splitlines()[0] == "time,side,qty,price,fee,reason"
    assert len(fills.read_text().splitlines()) == 58
    # where the files went, and what the strategy is up against
    assert f"chart written to {png}" in done.stdout and f"57 fills written to {fills}" in done.stdout
    frame = pd.read_csv(BTC_1H)
    hold = frame["close"].iloc[-1] / frame["close"].iloc[0] - 1
    assert row(done.stdout, "buy and hold") == f"{hold * 100:,.2f}%"


@pytest.mark.parametrize("flag, path, says", [
    ("--fills", "out", "--fills {tmp}/out: is a folder; expected a CSV file path"),
    ("--plot", "out", "--plot {tmp}/out: is a folder; expected a .png, .svg or .pdf file path"),
    ("--plot", "taken.csv/e.png", "--plot {tmp}/taken.csv/e.png: {tmp}/taken.csv is a file, not a folder"),
    ("--fills", "taken.csv/f.csv", "--fills {tmp}/taken.csv/f.csv: {tmp}/taken.csv is a file, not a folder"),
    ("--plot", "eq.txt", "--plot {tmp}/eq.txt: has the suffix .txt; expected a .png, .svg or .pdf file path"),
    ("--plot", "eq", "--plot {tmp}/eq: has no suffix; expected a .png, .svg or .pdf file path"),
])
def test_backtest_output_paths_are_checked_before_anything_runs(tmp_path, flag, path, says):
    (tmp_path / "out").mkdir()
    (tmp_path / "taken.csv").write_text("mine\n")
    # the candle file does not exist: the output path is refused before it is read
    done = trader("backtest", "--config", STRATEGY_YAML, "--data", tmp_path / "none.csv", flag, tmp_path / path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: {says.format(tmp=tmp_path)}") and done.stderr.count("\n") == 1
    assert (tmp_path / "taken.csv").read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "out", "taken.csv"]


def test_backtest_creates_missing_folders_and_says_so(tmp_path):
    chart, fills = tmp_path / "new" / "deeper" / "eq.svg", tmp_path / "other" / "fills.csv"
    done = trader("backtest", "--config", STRATEGY_YAML, "--data", BTC_1H, "--plot", chart, "--fills", fills, "--json")
    assert done.returncode == 0, done.stderr
    assert chart.read_text().lstrip().startswith("<?xml") and len(fills.read_text().splitlines()) == 58
    assert f"chart written to {chart} (created the folder {tmp_path / 'new'})" in done.stderr
    assert f"57 fills written to {fills} (created the folder {tmp_path / 'other'})" in done.stderr


def row(table: str, name: str) -> str:
    """The value of a metric in the printed table."""
    return next(line for line in table.splitlines() if f"│ {name} " in line).split("│")[2].strip()


def test_backtest_cut_by_start_and_end_with_exits_by_reason(tmp_path):
    done = trader("backtest", "--config", STRATEGY_YAML, "--data", BTC_1H, "--start", "2017-08-01",
                  "--end", "2017-10-01T00:00")
    assert done.returncode == 0, done.stderr
    assert "1,464 bars 2017-08-01 to 2017-09-30" in done.stdout  # 61 days of hours, the end left out
    trades = int(row(done.stdout, "trades"))
    counts = dict(part.rsplit(" ", 1) for part in row(done.stdout, "exits").split(", "))
    assert set(counts) == {"signal", "stop-loss", "take-profit"} and sum(map(int, counts.values())) == trades
    assert int(counts["stop-loss"]) > 0  # the example strategy's 5% stop fires in this window
    outside = trader("backtest", "--config", STRATEGY_YAML, "--data", BTC_1H, "--start", "2019-01-01")
    assert outside.returncode == 2 and "Traceback" not in outside.stderr
    assert "no candles between 2019-01-01 and the end; the file covers 2017-07-01" in outside.stderr


@pytest.mark.parametrize("content", ["fast: [20", "params:\n  fast: 200\n", "\x00\x01"])
def test_a_bad_strategy_file_exits_2_with_a_message_and_no_traceback(tmp_path, content):
    bad = tmp_path / "bad.yaml"
    text = STRATEGY_YAML.read_text()
    bad.write_text(text.replace("fast: 20", content) if content.startswith("fast") else text + content)
    done = trader("backtest", "--config", bad, "--data", BTC_1H, "--json")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert str(bad) in done.stderr


def test_bad_data_exits_2(tmp_path):
    bad = tmp_path / "bars.csv"
    bad.write_text("timestamp,open,high,low,close\n2024-01-01T00:00:00Z,1,0.5,1,1\n")
    done = trader("backtest", "--config", STRATEGY_YAML, "--data", bad)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "bars.csv" in done.stderr and "high" in done.stderr


def test_check_prints_the_version(config):
    done = trader("check", "--config", STRATEGY_YAML)
    assert done.returncode == 0 and config.version in done.stdout


def test_help_and_strategies():
    assert trader("--help").returncode == 0
    listing = trader("strategies")
    assert listing.returncode == 0
    for name in ("ma_cross", "rsi_reversion", "donchian"):
        assert name in listing.stdout


def test_help_does_not_import_the_heavy_libraries():
    probe = "import sys; from trader import cli; cli._parser(); print(sorted(m for m in ('ccxt', 'pandas', 'numba', 'matplotlib') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"

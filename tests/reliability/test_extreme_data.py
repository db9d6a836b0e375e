"""Extreme candle files (issue 12, item 4): what cannot be traded is refused naming the line,
and what can be traded gives metrics that are finite numbers or null, never inf, NaN or an
OverflowError."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trader.backtest.result import Metrics

from . import capped
from . import harness as H
from . import mutations as M

BTC = H.ROOT / "tests/data/btcusd-1h.csv"


def write(frame: pd.DataFrame, path) -> str:
    frame.to_csv(path, index_label="timestamp", date_format="%Y-%m-%dT%H:%M:%SZ")
    return str(path)


def candles(n: int, start: str = "2024-01-01", price: float = 100.0, growth: float = 1.0) -> pd.DataFrame:
    close = price * growth ** np.arange(n) * (1 + 0.01 * np.sin(np.arange(n)))
    index = pd.date_range(start, periods=n, freq="h", tz="UTC")
    return pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
                         "volume": 1.0}, index=index)


def both_commands(data: str) -> list[capped.Outcome]:
    """`trader backtest` and `trader run --replay` on the file, side by side."""
    config, goals = str(M.STRATEGY_FILE), str(M.GOALS_FILE)
    runs = [(["backtest", "--config", config, "--data", data, "--json"], H.clean_env()),
            (["run", "--replay", data, "--config", config, "--goals", goals, "--speed", "max"],
             H.clean_env(TRADER_DATA_DIR=str(Path(data).parent / "d")))]
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda job: capped.run(*job, timeout=60), runs))


def damaged(case: str) -> pd.DataFrame:
    frame = candles(300)
    if case == "prices_1e300":
        frame[["open", "high", "low", "close"]] *= 1e298
    elif case == "prices_1e-300":
        frame[["open", "high", "low", "close"]] *= 1e-302
    elif case == "gap_of_46_years":
        frame.index = frame.index.where(np.arange(300) >= 100, frame.index - pd.Timedelta(days=46 * 365 + 12))
    elif case == "year_2147":
        frame.index = frame.index + pd.Timedelta(days=123 * 365)
    else:
        frame = frame.iloc[: 1 if case == "one_row" else 2]
    return frame


CASES = [
    ("prices_1e300", "line 2, column 'open'", "cannot be traded"),
    ("prices_1e-300", "line 2, column 'open'", "cannot be traded"),
    ("gap_of_46_years", "line 102, column 'timestamp'", "46 years after line 101"),
    ("year_2147", "line 2, column 'timestamp'", "in the future"),
    ("one_row", "1 candle(s)", "expected at least 51"),
    ("two_rows", "2 candle(s)", "expected at least 51"),
]


@pytest.mark.parametrize("case, line, says", CASES, ids=[c[0] for c in CASES])
def test_untradable_candles_are_refused_naming_the_line(case, line, says, tmp_path, config):
    from trader.errors import DataError
    from trader.ohlcv import load_ohlcv, require_history

    data = write(damaged(case), tmp_path / "candles.csv")
    with pytest.raises(DataError) as caught:
        require_history(load_ohlcv(data, timeframe="1h"), config, data)
    message = str(caught.value)
    assert message.startswith(f"{data}: ") and line in message and says in message, message


def test_prices_of_1e300_are_refused_by_backtest_and_replay(tmp_path):
    data = write(damaged("prices_1e300"), tmp_path / "candles.csv")
    for done in both_commands(data):  # the replay used to exit 0 with equity 3e300
        assert done.returncode == 2 and not done.traceback, done.stderr[-2000:]
        assert f"error: {data}: " in done.stderr and "line 2, column 'open'" in done.stderr, done.stderr


@pytest.mark.slow  # two commands and a numba compile; test_metrics_never_overflow is the fast check
def test_a_steep_but_tradable_market_gives_finite_or_null_metrics(tmp_path):
    # 1e-10 to 1e10 in 300 hours: every price can be quoted; the annualised growth cannot
    data = write(candles(300, price=1e-10, growth=(1e20) ** (1 / 300)), tmp_path / "steep.csv")
    backtest, replay = both_commands(data)
    assert backtest.returncode == 0 and not backtest.traceback, backtest.stderr[-2000:]
    metrics = json.loads(backtest.stdout, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert metrics["cagr"] is None and metrics["exposure"] > 0.5
    assert all(v is None or math.isfinite(v) for v in metrics.values())
    assert replay.returncode == 0 and not replay.traceback, replay.stderr[-2000:]
    summary = json.loads(replay.stdout.strip().splitlines()[-1],
                         parse_constant=lambda c: pytest.fail(f"{c} in the replay summary"))
    assert summary["ticks"] == 300 and math.isfinite(summary["final_equity"])


def test_metrics_never_overflow():
    m = Metrics.from_run((1e300, 1.0, float("inf"), 0.1), (0, 3, 2, 1.0, 0.5, 10), 1e304, 100, 3600 * 100)
    assert m.cagr is None and m.monthly_return is None and m.sortino is None
    assert m.total_return == 1e300 and m.final_equity == 1e304
    m = Metrics.from_run((float("nan"), float("nan"), float("nan"), float("nan")), (0, 0, 0, 0.0, 0.0, 0),
                         float("inf"), 100, 3600 * 100)
    assert all(v is None or math.isfinite(v) for v in m.to_dict().values())

"""The backtester's public API on real bars: golden numbers, metrics re-derived, sweeps."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from trader.backtest import METRIC_KEYS, run_backtest, sweep
from trader.timeframes import SECONDS_PER_YEAR

# The committed config/strategy.yaml (SMA 20/50, 5% stop, 0.1% fee, 0.05% slippage, 95% stake)
# on tests/data/btcusd-1h.csv. Pinned so that any change to the fill model is deliberate; the
# model itself is checked against backtesting.py in test_crosscheck.py.
GOLDEN = {
    "total_return": 1.4707075206599716,
    "sharpe": 4.595909382661188,
    "sortino": 6.706374982347458,
    "max_drawdown": 0.20987775025641175,
    "trades": 28,
    "win_rate": 0.5714285714285714,
    "profit_factor": 3.065781227720201,
    "exposure": 0.5756666666666667,
    "final_equity": 24707.075206599715,
}


def test_golden_numbers(btc, config):
    from dataclasses import asdict, fields

    from trader.backtest import Metrics

    result = run_backtest(btc, config).metrics
    metrics = result.to_dict()
    assert list(metrics) == list(METRIC_KEYS) == [f.name for f in fields(Metrics)]
    assert metrics == asdict(result)
    for key, value in GOLDEN.items():
        assert metrics[key] == pytest.approx(value, rel=1e-9), key


def test_metrics_agree_with_a_plain_pandas_reading_of_the_equity(btc, config):
    result = run_backtest(btc, config)
    m = result.metrics
    equity = result.equity
    returns = equity.pct_change().dropna()
    scale = math.sqrt(365 * 24)
    assert m.sharpe == pytest.approx(returns.mean() / returns.std() * scale, rel=1e-9)
    downside = math.sqrt((returns.clip(upper=0) ** 2).mean())
    assert m.sortino == pytest.approx(returns.mean() / downside * scale, rel=1e-9)
    peak = equity.cummax().clip(lower=config.capital)
    assert m.max_drawdown == pytest.approx((1 - equity / peak).max(), rel=1e-12)
    years = len(btc) * 3600 / SECONDS_PER_YEAR
    assert m.cagr == pytest.approx((equity.iloc[-1] / config.capital) ** (1 / years) - 1, rel=1e-9)
    assert m.monthly_return == pytest.approx((1 + m.cagr) ** (1 / 12) - 1, rel=1e-9)
    assert m.final_equity == equity.iloc[-1]


def test_trades_reconcile_with_the_fills(btc, config):
    result = run_backtest(btc, config)
    fills = result.fills_frame()
    position = 0.0
    closed = 0
    cash = config.capital
    for fill in fills.itertuples():
        signed = fill.qty if fill.side == "buy" else -fill.qty
        position += signed
        cash -= signed * fill.price + fill.fee
        if fill.side == "sell" and position <= 1e-12:
            closed += 1
    assert closed == result.metrics.trades
    assert set(fills.reason) <= {"signal", "stop_loss", "take_profit"}
    assert "stop_loss" in set(fills.reason)  # the 5% stop fires on this data
    assert result.metrics.final_equity == pytest.approx(cash + position * btc["close"].iloc[-1], rel=1e-9)
    # fills happen at the bar's open (signals) or inside its range (stops)
    bars = btc.loc[fills.time]
    signal = fills.reason.to_numpy() == "signal"
    slip = config.risk.slippage
    expected = np.where(fills.side == "buy", bars.open * (1 + slip), bars.open * (1 - slip))
    np.testing.assert_allclose(fills.price[signal], expected[signal], rtol=1e-12)
    assert np.all(fills.price[~signal].to_numpy() <= bars.high[~signal].to_numpy())


def test_sweep_equals_one_backtest_per_variant(btc, config):
    variants = [{"fast": f} for f in (5, 12, 20, 33)] + [{"stop_loss": 0.1}, {"slow": 100, "fast": 40}]
    table = sweep(btc, config, variants)
    assert len(table) == len(variants)
    for row, changes in zip(table.to_dict("records"), variants):
        single = config
        for key, value in changes.items():
            single = single.with_value(key, value)
        expected = run_backtest(btc, single)
        assert row["version"] == single.version
        for key in METRIC_KEYS:
            assert row[key] == pytest.approx(getattr(expected.metrics, key), rel=1e-12), (changes, key)


def test_sweep_and_equity_curves_give_the_bits_of_one_backtest_each(btc, config):
    """The sweep's batched kernel (variants side by side, 16 lanes at a time) changes no bit, nor does
    the interpreted loop of a one-off run (`trader backtest`)."""
    from trader.backtest import equity_curves

    variants = [{"fast": f} for f in (5, 12, 20, 33)] + [{"stop_loss": 0.1}, {"take_profit": 0.2}]
    singles = [config.with_values(v) for v in variants]
    table = sweep(btc, config, variants).to_dict("records")
    curves = equity_curves(btc, config, singles)
    for row, single, curve in zip(table, singles, curves):
        expected = run_backtest(btc, single)
        assert {key: row[key] for key in METRIC_KEYS} == expected.metrics.to_dict()
        assert curve.tobytes() == expected.equity.to_numpy().tobytes()
        one_off = run_backtest(btc, single, one_off=True)
        assert one_off.metrics == expected.metrics
        assert one_off.equity.to_numpy().tobytes() == expected.equity.to_numpy().tobytes()
        pd.testing.assert_frame_equal(one_off.fills_frame(), expected.fills_frame(), check_exact=True)


def test_sweep_rejects_a_variant_outside_the_tunable_bounds(btc, config):
    from trader.errors import ConfigError

    with pytest.raises(ConfigError, match=r"params.fast: 41 is outside its tunable bounds \[5, 40\]"):
        sweep(btc, config, [{"fast": 41}])


def test_sweep_reports_progress(btc, config):
    seen = []
    sweep(btc, config, [{"fast": 10}, {"fast": 11}], progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]


def test_no_signal_means_flat_equity(btc, config):
    quiet = config.with_value("fast", 5).with_value("slow", 200)
    # the first 199 bars cannot produce a signal: backtest only those
    result = run_backtest(btc.iloc[:199], quiet)
    assert result.fills == () and np.all(result.equity == config.capital)
    assert result.metrics.total_return == 0 and result.metrics.trades == 0
    assert result.metrics.win_rate is None and result.metrics.exposure == 0


def test_the_fills_columns_read_as_fill_objects(btc, config):
    """The fills are kept as columns; one by one, sliced, iterated or as a frame they are the
    Fill records the kernel's rows describe."""
    from trader.backtest.result import Fill

    fills = run_backtest(btc, config).fills
    listed = list(fills)
    assert len(listed) == len(fills) > 10 and all(isinstance(f, Fill) for f in listed)
    assert fills[0] == listed[0] and fills[-1] == listed[-1] and list(fills[2:5]) == listed[2:5]
    assert fills == tuple(listed) and fills != tuple(listed[:-1])
    assert isinstance(listed[0].time, pd.Timestamp) and listed[0].time.tzinfo is not None
    assert {f.side for f in listed} == {"buy", "sell"} and all(type(f.qty) is float for f in listed)
    frame = fills.frame()
    assert list(frame.columns) == ["time", "side", "qty", "price", "fee", "reason"]
    assert [tuple(row) for row in frame.itertuples(index=False)] == [
        (f.time, f.side, f.qty, f.price, f.fee, f.reason) for f in listed]
    assert list(fills.sides_qtys_reasons()) == [(f.side, f.qty, f.reason) for f in listed]

"""The fill model on hand-made bars, where every number can be worked out on paper."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trader.backtest import kernel, rules


def run(bars, target, stake=1.0, fee=0.0, slippage=0.0, stop_loss=0.0, take_profit=0.0, cash=1000.0):
    bars = np.asarray(bars, dtype=float)
    o, h, l, c = (np.ascontiguousarray(bars[:, i]) for i in range(4))
    equity = np.empty(len(c))
    fills = np.zeros((2 * len(c) + 1, 6))
    counts = kernel.simulate(o, h, l, c, np.asarray(target, dtype=float), stake, fee, slippage,
                             stop_loss, take_profit, cash, equity, fills)
    return counts, equity, fills[: counts[0]]


FLAT = [(100, 100, 100, 100)]


def test_signal_fills_at_the_next_open_with_fee_inside_the_stake():
    bars = [(100, 101, 99, 100), (110, 112, 108, 111), (120, 121, 119, 120), (130, 131, 129, 130)]
    counts, equity, fills = run(bars, [1, 1, 0, 0], fee=0.01)
    qty = 1000 / (110 * 1.01)
    assert fills[0].tolist() == pytest.approx([1, rules.BUY, qty, 110, 1000 - qty * 110, rules.SIGNAL])
    assert fills[1].tolist() == pytest.approx([3, rules.SELL, qty, 130, qty * 130 * 0.01, rules.SIGNAL])
    assert equity[0] == 1000 and equity[1] == pytest.approx(qty * 111)
    assert equity[3] == pytest.approx(qty * 130 * 0.99)
    n_fills, trades, wins, profit, loss, bars_in = counts
    assert (n_fills, trades, wins, bars_in) == (2, 1, 1, 3)
    assert profit == pytest.approx(qty * 130 * 0.99 - 1000) and loss == 0


def test_the_last_bar_signal_is_never_filled():
    counts, equity, fills = run(FLAT * 3, [0, 0, 1])
    assert counts[0] == 0 and np.all(equity == 1000)


def test_slippage_moves_market_fills_against_us_and_stake_keeps_cash():
    bars = [(100, 100, 100, 100)] * 4
    counts, equity, fills = run(bars, [1, 1, 0, 0], stake=0.5, slippage=0.01)
    buy, sell = fills
    assert buy[3] == pytest.approx(101) and sell[3] == pytest.approx(99)
    assert buy[2] == pytest.approx(500 / 101)
    assert equity[-1] == pytest.approx(500 + 500 / 101 * 99)


def test_stop_loss_fills_at_the_stop_on_the_entry_bar():
    bars = [(100, 100, 100, 100), (100, 101, 90, 95), (95, 96, 94, 95)]
    counts, equity, fills = run(bars, [1, 1, 1], stop_loss=0.05, slippage=0.001)
    entry = 100 * 1.001
    stop = entry * 0.95
    assert fills[1].tolist() == pytest.approx([1, rules.SELL, 1000 / entry, stop * 0.999, 0, rules.STOP_LOSS])
    # no re-entry while the strategy keeps the same target
    assert counts[0] == 2 and equity[2] == pytest.approx(equity[1])


def test_a_gap_through_the_stop_fills_at_the_open():
    bars = [(100, 100, 100, 100), (100, 100, 99, 100), (80, 82, 78, 81)]
    _, _, fills = run(bars, [1, 1, 1], stop_loss=0.05)
    assert fills[-1][3] == 80 and fills[-1][5] == rules.STOP_LOSS


def test_take_profit_is_a_limit_without_slippage_and_a_gap_fills_at_the_better_open():
    bars = [(100, 100, 100, 100), (100, 100, 100, 100), (101, 115, 100, 104)]
    _, _, fills = run(bars, [1, 1, 1], take_profit=0.1, slippage=0.01)
    assert fills[-1][3] == pytest.approx(101 * 1.1) and fills[-1][5] == rules.TAKE_PROFIT
    gap = [(100, 100, 100, 100), (100, 100, 100, 100), (130, 131, 129, 130)]
    _, _, fills = run(gap, [1, 1, 1], take_profit=0.1)
    assert fills[-1][3] == 130


def test_a_bar_touching_both_levels_is_read_as_the_stop():
    bars = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 120, 80, 100)]
    _, _, fills = run(bars, [1, 1, 1], stop_loss=0.05, take_profit=0.1)
    assert fills[-1][5] == rules.STOP_LOSS and fills[-1][3] == pytest.approx(95)


def test_after_a_stop_a_new_signal_reenters():
    bars = [(100, 100, 100, 100), (100, 100, 90, 92), (92, 92, 92, 92), (92, 92, 92, 92), (93, 93, 93, 93)]
    counts, _, fills = run(bars, [1, 1, 0, 1, 1], stop_loss=0.05)
    assert [f[5] for f in fills] == [rules.SIGNAL, rules.STOP_LOSS, rules.SIGNAL]
    assert fills[-1][0] == 4 and fills[-1][1] == rules.BUY


def test_partial_exposure_rebalances_to_the_new_target():
    bars = [(100, 100, 100, 100)] * 4
    counts, equity, fills = run(bars, [0.5, 1.0, 0.25, 0.25])
    assert [f[1] for f in fills] == [rules.BUY, rules.BUY, rules.SELL]
    assert fills[0][2] == pytest.approx(5) and fills[1][2] == pytest.approx(5)
    assert fills[2][2] == pytest.approx(7.5)
    assert counts[1] == 0  # never flat again: no closed trade
    assert equity[-1] == pytest.approx(1000)


def test_equity_stats_by_hand():
    equity = np.array([100.0, 110.0, 99.0, 108.9])
    total, sharpe, sortino, max_dd = kernel.equity_stats(equity, 100.0, 4.0)
    returns = np.array([0.1, -0.1, 0.1])
    assert total == pytest.approx(0.089)
    assert sharpe == pytest.approx(returns.mean() / returns.std(ddof=1) * 2)
    assert sortino == pytest.approx(returns.mean() / math.sqrt(0.01 / 3) * 2)
    assert max_dd == pytest.approx(0.1)


def test_flat_equity_has_zero_ratios():
    total, sharpe, sortino, max_dd = kernel.equity_stats(np.full(10, 50.0), 50.0, 8760.0)
    assert (total, sharpe, sortino, max_dd) == (0.0, 0.0, 0.0, 0.0)


def test_a_sweep_refuses_a_zero_equity_as_one_backtest_does():
    """The batched statistics run without numba's zero checks (so that they vectorise): an
    equity of 0 (here a close of 0 with all the cash in) must still raise, not give inf."""
    bars = [(100, 100, 100, 100), (100, 100, 100, 0), (100, 100, 100, 100)]
    _, equity, _ = run(bars, [1, 1, 1])
    assert equity[1] == 0.0
    with pytest.raises(ZeroDivisionError):
        kernel.equity_stats(equity, 1000.0, 8760.0)
    o, h, l, c = (np.ascontiguousarray(np.asarray(bars, dtype=float)[:, i]) for i in range(4))
    k = 3
    settings = [np.full(k, v) for v in (1.0, 0.0, 0.0, 0.0, 0.0, 1000.0)]
    with pytest.raises(ZeroDivisionError):
        kernel.simulate_many(o, h, l, c, np.ones((k, 3)), *settings, 8760.0, np.empty((3, kernel.LANES)),
                             np.empty((0, 3)), np.empty((k, 6)), np.empty((k, 5)))


def test_a_batch_of_several_lane_groups_gives_each_variant_its_own_bits():
    """Variants in whole and partial groups of the kernel's lanes, each with its own stops,
    fee and capital, against `simulate` + `equity_stats` run once per variant."""
    rng = np.random.default_rng(7)
    n, k = 400, 2 * kernel.LANES + 3
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    o = np.concatenate([[100.0], close[:-1]])
    h, l = np.maximum(o, close) * 1.01, np.minimum(o, close) * 0.99
    targets = rng.choice([0.0, 0.5, 1.0], size=(k, n), p=[0.45, 0.1, 0.45])
    settings = [rng.uniform(0.5, 1.0, k), rng.uniform(0, 0.01, k), rng.uniform(0, 0.005, k),
                rng.choice([0.0, 0.03], k), rng.choice([0.0, 0.05], k), rng.uniform(500, 1500, k)]
    curves, counts, stats = np.empty((k, n)), np.empty((k, 6)), np.empty((k, 5))
    kernel.simulate_many(o, h, l, close, targets, *settings, 8760.0, np.empty((n, kernel.LANES)), curves, counts, stats)
    for i in range(k):
        equity = np.empty(n)
        one = kernel.simulate(o, h, l, close, targets[i], *(s[i] for s in settings), equity, np.empty((0, 6)))
        assert tuple(counts[i]) == one and equity.tobytes() == curves[i].tobytes()
        assert tuple(stats[i]) == (*kernel.equity_stats(equity, settings[5][i], 8760.0), equity[-1])
    with pytest.raises(ValueError, match="lanes"):
        kernel.simulate_many(o, h, l, close, targets, *settings, 8760.0, np.empty((n, kernel.LANES + 1)),
                             curves, counts, stats)

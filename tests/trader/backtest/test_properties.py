"""Properties of the fill model over generated markets (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from trader.backtest import kernel

N = 60


@st.composite
def markets(draw):
    """Positive OHLC bars from random log-returns and random wicks, and a target per bar."""
    steps = draw(arrays(np.float64, N, elements=st.floats(-0.2, 0.2)))
    close = 100 * np.exp(np.cumsum(steps))
    open_ = np.concatenate([[100.0], close[:-1]])
    # wicks on a grid that misses the stop and take-profit levels: a high of exactly entry * 1.1
    # is hit or missed by the last bit of a float average entry price, which a fee changes
    # (hypothesis found it: a higher fee, a take-profit hit by rounding, a higher return)
    wicks = st.sampled_from([0.0, 0.005, 0.013, 0.037, 0.071, 0.097])
    wick_up = draw(arrays(np.float64, N, elements=wicks))
    wick_down = draw(arrays(np.float64, N, elements=wicks))
    high = np.maximum(open_, close) * (1 + wick_up)
    low = np.minimum(open_, close) * (1 - wick_down)
    target = draw(arrays(np.float64, N, elements=st.sampled_from([0.0, 0.25, 0.5, 1.0])))
    return open_, high, low, close, target


risk = st.fixed_dictionaries({
    "stake": st.floats(0.01, 1.0),
    "fee": st.floats(0.0, 0.05),
    "slippage": st.floats(0.0, 0.05),
    "stop_loss": st.sampled_from([0.0, 0.01, 0.05, 0.2]),
    "take_profit": st.sampled_from([0.0, 0.02, 0.1, 0.5]),
})


def simulate(market, stake, fee, slippage, stop_loss, take_profit, target=None):
    o, h, l, c, t = market
    equity = np.empty(N)
    counts = kernel.simulate(o, h, l, c, t if target is None else target, stake, fee, slippage,
                             stop_loss, take_profit, 1000.0, equity, np.empty((0, 6)))
    return counts, equity


@settings(max_examples=300, deadline=None)
@given(markets(), risk)
def test_equity_is_never_negative(market, r):
    _, equity = simulate(market, **r)
    assert np.all(equity >= 0)
    assert np.all(np.isfinite(equity))


@settings(max_examples=100, deadline=None)
@given(markets(), risk)
def test_no_trades_means_flat_equity(market, r):
    counts, equity = simulate(market, **r, target=np.zeros(N))
    assert counts[0] == 0
    assert np.all(equity == 1000.0)


@settings(max_examples=300, deadline=None)
@given(markets(), risk, st.floats(0.0, 0.05))
def test_a_higher_fee_never_raises_the_return(market, r, extra):
    _, cheap = simulate(market, **r)
    _, dear = simulate(market, **{**r, "fee": r["fee"] + extra})
    assert dear[-1] <= cheap[-1] * (1 + 1e-12)


@settings(max_examples=200, deadline=None)
@given(markets(), risk)
def test_the_interpreted_loop_gives_the_compiled_bits(market, r):
    """`trader backtest` runs a short file through `loop` as plain Python (no numba to load):
    the same fills, equity and statistics, bit for bit, as the compiled kernel."""
    from trader.backtest import loop

    o, h, l, c, t = market
    args = (r["stake"], r["fee"], r["slippage"], r["stop_loss"], r["take_profit"], 1000.0)
    equity, fills = np.empty(N), np.zeros((2 * N + 1, 6))
    counts = kernel.simulate(o, h, l, c, t, *args, equity, fills)
    equity_py, fills_py = np.empty(N), np.zeros((2 * N + 1, 6))
    counts_py = loop.simulate(o.tolist(), h.tolist(), l.tolist(), c.tolist(), t.tolist(), *args, equity_py, fills_py)
    assert counts_py == counts
    assert equity_py.tobytes() == equity.tobytes() and fills_py.tobytes() == fills.tobytes()
    assert loop.equity_stats(equity.tolist(), 1000.0, 8760.0) == kernel.equity_stats(equity, 1000.0, 8760.0)


@settings(max_examples=50, deadline=None)
@given(st.lists(markets(), min_size=1, max_size=2 * kernel.LANES + 3), risk)  # whole and partial groups
def test_the_batched_kernel_gives_each_variant_its_own_bits(markets_, r):
    """A sweep's `simulate_many` (several variants, their statistics computed side by side)
    against `simulate` + `equity_stats` run once per variant."""
    o, h, l, c, _ = markets_[0]
    targets = np.array([m[4] for m in markets_])
    k = len(targets)
    settings_ = [np.full(k, r[name]) for name in ("stake", "fee", "slippage", "stop_loss", "take_profit")]
    cash = np.linspace(500.0, 1500.0, k)
    curves, counts, stats = np.empty((k, N)), np.empty((k, 6)), np.empty((k, 5))
    lanes = np.empty((N, kernel.LANES))
    kernel.simulate_many(o, h, l, c, targets, *settings_, cash, 8760.0, lanes, curves, counts, stats)
    scratch_counts, scratch_stats = np.empty((k, 6)), np.empty((k, 5))
    kernel.simulate_many(o, h, l, c, targets, *settings_, cash, 8760.0, lanes, np.empty((0, N)),
                         scratch_counts, scratch_stats)
    assert scratch_counts.tobytes() == counts.tobytes() and scratch_stats.tobytes() == stats.tobytes()
    for i in range(k):
        equity = np.empty(N)
        one = kernel.simulate(o, h, l, c, targets[i], *(s[i] for s in settings_), cash[i], equity, np.empty((0, 6)))
        assert tuple(counts[i]) == one and equity.tobytes() == curves[i].tobytes()
        assert tuple(stats[i]) == (*kernel.equity_stats(equity, cash[i], 8760.0), equity[-1])

"""Every registered strategy is a pure, causal function of the bars it has seen."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import strategies

CUTS = (60, 250, 1000, 2999)


@pytest.fixture(params=sorted(strategies.REGISTRY))
def strategy(request):
    return strategies.get(request.param)


def _param_sets(strategy):
    yield strategy.params()
    # the smallest and largest declared tunable values, where they make a valid set
    for pick in (0, 1):
        values = {k: type(getattr(strategy.params(), k))(bounds[pick]) for k, bounds in strategy.tunable.items()}
        try:
            yield strategy.params(**values)
        except ValueError:
            pass


def test_exposure_is_in_range_and_moves(strategy, btc):
    for params in _param_sets(strategy):
        exposure = strategy.exposure(btc, params)
        assert exposure.shape == (len(btc),)
        assert np.all((exposure >= 0) & (exposure <= 1))
        # a strategy that never trades on 3,000 real bars would make every other test vacuous
        assert 0 < exposure.sum() < len(btc)
        assert np.all(exposure[: strategy.warmup(params) - 1] == 0)


def test_exposure_ignores_removed_future_bars(strategy, btc):
    for params in _param_sets(strategy):
        full = strategy.exposure(btc, params)
        for cut in CUTS:
            head = strategy.exposure(btc.iloc[: cut + 1], params)
            np.testing.assert_array_equal(head, full[: cut + 1], err_msg=f"{strategy.name} cut at {cut}")


def test_exposure_ignores_altered_future_bars(strategy, btc):
    rng = np.random.default_rng(7)
    moved = False
    for params in _param_sets(strategy):
        full = strategy.exposure(btc, params)
        for cut in CUTS[:-1]:
            altered = btc.copy()
            tail = altered.iloc[cut + 1 :]
            noise = rng.uniform(0.5, 1.5, size=len(tail))
            # a wild but internally consistent future: scaled prices, inverted highs/lows kept valid
            for col in ("open", "close"):
                altered.iloc[cut + 1 :, altered.columns.get_loc(col)] = tail[col].to_numpy() * noise
            hi = altered.iloc[cut + 1 :][["open", "close"]].max(axis=1) * 1.01
            lo = altered.iloc[cut + 1 :][["open", "close"]].min(axis=1) * 0.99
            altered.iloc[cut + 1 :, altered.columns.get_loc("high")] = hi.to_numpy()
            altered.iloc[cut + 1 :, altered.columns.get_loc("low")] = lo.to_numpy()
            changed = strategy.exposure(altered, params)
            np.testing.assert_array_equal(changed[: cut + 1], full[: cut + 1])
            moved = moved or not np.array_equal(changed, full)
    assert moved, "the altered futures never changed the exposure: the test would prove nothing"


def test_params_are_frozen_and_strict(strategy):
    params = strategy.params()
    with pytest.raises(Exception):
        params.__setattr__(next(iter(type(params).model_fields)), 1)
    with pytest.raises(ValueError):
        strategy.params(no_such_parameter=1)


def test_registry_names_the_known_strategies():
    assert {"ma_cross", "rsi_reversion", "donchian"} <= set(strategies.REGISTRY)
    with pytest.raises(KeyError, match="known strategies: donchian, ma_cross, rsi_reversion"):
        strategies.get("macd")


def test_ma_cross_matches_a_plain_pandas_reading(btc):
    params = strategies.get("ma_cross").params(fast=10, slow=30)
    fast = btc["close"].rolling(10).mean()
    slow = btc["close"].rolling(30).mean()
    expected = (fast > slow).astype(float).to_numpy()
    np.testing.assert_array_equal(strategies.get("ma_cross").exposure(btc, params), expected)


def test_donchian_breaks_only_levels_set_before_the_bar():
    # a rising staircase: every close above the prior 3-bar high -> long from bar 3 on
    close = np.arange(1.0, 11.0)
    frame = pd.DataFrame({"open": close, "high": close, "low": close - 0.5, "close": close, "volume": 1.0})
    strategy = strategies.get("donchian")
    exposure = strategy.exposure(frame, strategy.params(entry=3, exit=2))
    np.testing.assert_array_equal(exposure, [0, 0, 0, 1, 1, 1, 1, 1, 1, 1])
    # then a fall through the prior 2-bar low -> flat
    down = np.array([10.0, 9.0, 7.0, 5.0])
    frame2 = pd.concat([frame, pd.DataFrame({"open": down, "high": down, "low": down - 0.5, "close": down, "volume": 1.0})], ignore_index=True)
    exposure2 = strategy.exposure(frame2, strategy.params(entry=3, exit=2))
    assert exposure2[-1] == 0 and exposure2[9] == 1


def test_rsi_reversion_enters_oversold_and_leaves_recovered():
    strategy = strategies.get("rsi_reversion")
    falling = list(np.linspace(100, 60, 20))
    rising = list(np.linspace(61, 120, 20))
    close = np.array(falling + rising)
    frame = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0})
    exposure = strategy.exposure(frame, strategy.params(period=5, oversold=30, exit_level=55))
    assert exposure[:5].sum() == 0  # warm-up
    assert exposure[19] == 1  # deep in the fall: oversold
    assert exposure[-1] == 0  # long recovered


def test_latest_is_the_last_bar_of_exposure(strategy, btc):
    """What a tick acts on (`latest`) is the backtest's exposure of that bar, to the bit."""
    for params in _param_sets(strategy):
        full = strategy.exposure(btc, params)
        for cut in CUTS:
            assert strategy.latest(btc.iloc[: cut + 1], params) == full[cut], (strategy.name, cut)


@pytest.mark.parametrize("raw, clean", [(np.nan, 0.0), (np.inf, 1.0), (-np.inf, 0.0), (1.7, 1.0), (-0.2, 0.0), (0.4, 0.4)])
def test_latest_cleans_the_last_value_as_exposure_does(raw, clean, btc):
    from dataclasses import replace

    base = strategies.get("ma_cross")
    odd = replace(base, signal=lambda ohlcv, params: np.full(len(ohlcv), raw))
    assert odd.latest(btc.iloc[:10], base.params()) == clean == odd.exposure(btc.iloc[:10], base.params())[-1]


@pytest.mark.parametrize("raw", [np.nan, np.inf, -np.inf, 1.7, -0.2, 0.4])
def test_exposure_into_a_buffer_gives_the_same_values(raw, btc):
    """A sweep has `exposure` write into its buffer (`out`): the same values as a fresh array."""
    from dataclasses import replace

    base = strategies.get("ma_cross")
    frame = btc.iloc[:50]
    values = np.full(len(frame), raw)
    values[::7] = 0.25  # a mixed signal: the checked path or the cleaning one
    odd = replace(base, signal=lambda ohlcv, params: values)
    for strategy in (odd, base):
        out = np.full(len(frame), -9.0)
        assert strategy.exposure(frame, base.params(), out=out) is out
        assert out.tobytes() == strategy.exposure(frame, base.params()).tobytes()

"""Cross-check our backtester against backtesting.py (and vectorbt) on real hourly BTC data.

The same long-only SMA crossover (long while the fast SMA of the close is above the slow one)
runs through our `run_backtest` and through the reference engines on the committed
tests/data/btcusd-1h.csv (3,000 bars). Trade count, total return, every fill and the whole
equity curve must agree. Conventions, and how each is aligned:

Our side (`trader.backtest`): config with stake_fraction 1.0, fee 0.001, slippage 0,
stop_loss/take_profit off, capital 10,000.

* Fills: the exposure wanted after bar t's close is traded at bar t+1's open.
  backtesting.py: `trade_on_close=False` (the default) fills a market order placed in
  `Strategy.next()` at bar t at bar t+1's open. vectorbt: `from_signals` fills at the bar
  of the signal, so its signals are our target shifted one bar later and `price=open`.
* Warm-up: backtesting.py only calls `next()` from bar 1 + (leading NaNs of the `self.I`
  indicators), i.e. one bar *after* the slow SMA first exists, so a crossover already true
  on that first bar would be acted on one bar late. The SMAs are therefore kept as plain
  arrays (pandas rolling mean, computed here, not by our code) outside `self.I`; `next()`
  then runs from bar 1, and NaN comparisons read as "flat", exactly as ours.
* Units: backtesting.py trades whole units. `backtesting.lib.FractionalBacktest` (default
  `fractional_unit` = 1 satoshi = 1e-8 BTC) scales prices by 1e-8 so one unit is one satoshi
  and rescales sizes/prices in `_trades` afterwards.
* Sizing an all-in buy with commission: our buy spends stake*equity including the fee,
  qty = budget / (price * (1 + fee)). backtesting.py's `buy()` defaults to size
  1 - float eps (a fraction of equity), which `_Broker._process_orders` turns into
  units = int(margin_available * size // (price + commission(size, price) / size))
  = floor(equity * (1 - 2.2e-16) / (price * (1 + commission))) in satoshis: the same formula,
  rounded down to a whole satoshi. So its position is at most 1 satoshi smaller per entry
  (<= $0.0002 of 2017 prices on a ~$10k-30k account, ~1e-9 relative), well inside 1e-6.
  No explicit unit sizes are needed. vectorbt: `size=np.inf` buys with all cash,
  size = cash / (1 + fees) / price (`buy_nb`): identical, fractional.
* Commission: ours charges fee * notional on every fill. backtesting.py (>= 0.4) charges
  `commission` * |size| * price at trade open (`_open_trade`) and again at close
  (`_close_trade`), entry at the raw open (spread 0): the same. vectorbt: `fees` per fill.
  Slippage is 0 here: backtesting.py has no per-fill slippage (its `spread` adjusts only the
  entry price), so it could not mirror ours.
* One position at a time: the backtesting.py strategy buys only when flat and closes only
  when long, so `exclusive_orders` (which would auto-close the position on a new order) has
  nothing to do; it is left False. `hedging=False`.
* End of data: our open position is marked to the last close and not counted as a trade.
  backtesting.py with `finalize_trades=False` (the default) leaves it open: "# Trades"
  counts closed trades only and the last equity is cash + unrealised P&L at the last close,
  without an exit commission. An order placed on the last bar never fills in either engine.
  vectorbt: `trades.closed.count()`; `total_return` marks the position to the last close.
* Total return: backtesting.py "Equity Final [$]" / cash - 1 (its "Return [%]" is the same
  number divided by equity[0], which equals the cash since nothing trades on bar 0).
* Also compared: every trade's entry/exit time, price and size; the equity curve after each
  bar's close; win rate (P&L net of both fees > 0 in both); exposure (both count entry bar
  to exit bar inclusive; backtesting.py leaves a still-open trade out, so the test adds it).
  Not compared: profit factor (backtesting.py's is a ratio of summed trade *returns*, ours
  of summed P&L) and Sharpe/Sortino (backtesting.py annualises daily-resampled returns).

backtesting.py's tqdm progress bar is switched off (it would only print to stderr).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trader.backtest import run_backtest
from trader.config import StrategyConfig, parse_strategy_config

DATA = Path(__file__).resolve().parents[1] / "data" / "btcusd-1h.csv"
CASH = 10_000.0
FEE = 0.001
PAIRS = [(10, 30), (20, 50)]


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    try:
        from trader.ohlcv import load_ohlcv
    except ImportError:  # the loader is optional here: the CSV is already canonical
        return pd.read_csv(DATA, index_col="timestamp", parse_dates=True)
    return load_ohlcv(DATA)


def our_config(fast: int, slow: int, slippage: float = 0.0) -> StrategyConfig:
    return parse_strategy_config(
        {
            "name": "crosscheck",
            "exchange": "coinbase",
            "symbol": "BTC/USD",
            "timeframe": "1h",
            "capital": CASH,
            "strategy": "ma_cross",
            "params": {"fast": fast, "slow": slow, "kind": "sma"},
            "risk": {"stake_fraction": 1.0, "stop_loss": None, "take_profit": None,
                     "fee": FEE, "slippage": slippage},
        },
        source="<crosscheck>",
    )


def reference_target(bars: pd.DataFrame, fast: int, slow: int) -> pd.Series:
    """The crossover computed independently of our strategy code (NaN compares False)."""
    close = bars["close"]
    return close.rolling(fast).mean() > close.rolling(slow).mean()


def run_backtesting_py(bars: pd.DataFrame, fast: int, slow: int, monkeypatch) -> pd.Series:
    import backtesting.backtesting
    from backtesting import Strategy
    from backtesting.lib import FractionalBacktest

    monkeypatch.setattr(backtesting.backtesting, "_tqdm", lambda seq, **_: seq)
    want = reference_target(bars, fast, slow).to_numpy()

    class SmaCross(Strategy):
        def init(self):
            pass  # no self.I: see "Warm-up" in the module docstring

        def next(self):
            i = len(self.data) - 1
            if want[i] and not self.position:
                self.buy()  # size 1 - eps: all equity, commission included
            elif not want[i] and self.position:
                self.position.close()

    data = bars.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]
    bt = FractionalBacktest(data, SmaCross, cash=CASH, commission=FEE, trade_on_close=False,
                            exclusive_orders=False, hedging=False, finalize_trades=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "trades remain open at the end": intended
        return bt.run()


@pytest.mark.parametrize("fast, slow", PAIRS)
def test_sma_cross_matches_backtesting_py(bars, fast, slow, monkeypatch):
    ours = run_backtest(bars, our_config(fast, slow))
    stats = run_backtesting_py(bars, fast, slow, monkeypatch)

    assert ours.metrics.trades >= 20  # enough round trips for the check to mean something
    assert ours.metrics.trades == stats["# Trades"]
    assert ours.metrics.total_return == pytest.approx(stats["Equity Final [$]"] / CASH - 1.0, rel=1e-6)

    # Every closed trade: same entry and exit bars, prices, size (to the satoshi).
    fills = ours.fills_frame()
    assert set(fills["reason"]) == {"signal"}
    buys, sells = fills[fills.side == "buy"], fills[fills.side == "sell"]
    trades = stats["_trades"]
    n = len(trades)
    assert list(buys["time"][:n]) == list(trades["EntryTime"])
    assert list(sells["time"]) == list(trades["ExitTime"])
    np.testing.assert_allclose(buys["price"][:n], trades["EntryPrice"], rtol=1e-12)
    np.testing.assert_allclose(sells["price"], trades["ExitPrice"], rtol=1e-12)
    np.testing.assert_allclose(buys["qty"][:n], trades["Size"], rtol=1e-6)
    # The open position at the end (if any) is the one extra buy.
    assert len(buys) - n == (1 if ours.fills[-1].side == "buy" else 0)

    np.testing.assert_allclose(ours.equity.to_numpy(), stats["_equity_curve"]["Equity"].to_numpy(),
                               rtol=1e-6)

    # Win rate: both count trades whose P&L net of both fees is positive.
    assert ours.metrics.win_rate == pytest.approx(stats["Win Rate [%]"] / 100, rel=1e-12)
    # Exposure: both count a trade's bars from the entry bar to the exit bar inclusive;
    # backtesting.py leaves out a trade still open at the end, ours counts it to the last bar.
    held = np.zeros(len(bars), dtype=bool)
    for trade in trades.itertuples():
        held[trade.EntryBar : trade.ExitBar + 1] = True
    if ours.fills[-1].side == "buy":
        held[bars.index.get_loc(ours.fills[-1].time):] = True
    assert ours.metrics.exposure == pytest.approx(held.mean(), rel=1e-12)


@pytest.mark.slow  # importing vectorbt and JIT-compiling its simulator takes 5-15 s
@pytest.mark.parametrize("fast, slow, slippage", [(*p, 0.0) for p in PAIRS] + [(10, 30, 0.0005)])
def test_sma_cross_matches_vectorbt(bars, fast, slow, slippage):
    vbt = pytest.importorskip("vectorbt")
    ours = run_backtest(bars, our_config(fast, slow, slippage))

    # from_signals fills on the signal's own bar: shift our target one bar to fill at t+1's open
    held = reference_target(bars, fast, slow).shift(1, fill_value=False).astype(bool)
    pf = vbt.Portfolio.from_signals(
        bars["close"], entries=held, exits=~held, price=bars["open"], size=np.inf,
        fees=FEE, slippage=slippage, init_cash=CASH, freq="1h",
    )
    assert ours.metrics.trades >= 20
    assert ours.metrics.trades == pf.trades.closed.count()
    assert ours.metrics.total_return == pytest.approx(pf.total_return(), rel=1e-6)
    np.testing.assert_allclose(ours.equity.to_numpy(), pf.value().to_numpy(), rtol=1e-9)

"""The backtester: the strategy's own signal function, a compiled fill model, metrics.

Conventions (the daemon's paper broker follows the same ones):

* Orders fill at the next bar's open: the exposure a strategy wants after bar t closes is
  traded at the open of bar t+1, never at a price it has already seen.
* Quantities are fractional. A position is sized to `exposure * stake_fraction * equity`,
  fee included, never more than the cash: equity cannot go negative.
* Fees are a fraction of each fill's notional; slippage moves market fills against us.
* Stop-loss and take-profit are measured from the average entry price and checked against
  each bar's low and high from the entry bar on; when one bar touches both, the stop is
  taken (pessimistic, since the order inside the bar is unknown). Details: `kernel`.
* Equity is marked to the close of every bar. Metrics: `result.Metrics`.
"""


__all__ = ["METRIC_KEYS", "BacktestResult", "Fill", "Metrics", "equity_curves", "run_backtest", "sweep"]


def __getattr__(name: str):
    # imported on first use: the daemon's risk engine needs `rules` only, not numba
    if name in ("METRIC_KEYS", "BacktestResult", "Fill", "Metrics"):
        from . import result

        return getattr(result, name)
    if name in ("equity_curves", "run_backtest", "sweep"):
        from . import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

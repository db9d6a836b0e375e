"""Equity and drawdown chart of a backtest, as a PNG."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def plot_equity(equity: pd.Series, close: pd.Series, title: str, path: str | Path) -> Path:
    """Write equity (with buy-and-hold for reference) above its drawdown."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    path = Path(path)
    start = float(equity.iloc[0]) if len(equity) else 0.0
    hold = close / float(close.iloc[0]) * start
    drawdown = equity / equity.cummax() - 1.0

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot(equity.index, equity.to_numpy(), label="strategy", color="#1f77b4", linewidth=1.2)
    top.plot(hold.index, hold.to_numpy(), label="buy and hold", color="#999999", linewidth=0.8)
    top.set_ylabel("equity")
    top.set_title(title, parse_math=False)  # a '$' in the user's name is text, not mathtext
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    bottom.fill_between(drawdown.index, drawdown.to_numpy() * 100, 0, color="#d62728", alpha=0.4)
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

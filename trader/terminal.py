"""What people read in the terminal: tables on stdout, progress on stderr (only when it is a
terminal, so pipes and --json output stay clean)."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import pandas as pd

from .domain import reduce_position


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


@contextlib.contextmanager
def phases(enabled: bool = True) -> Iterator[Callable[[str], None]]:
    """A progress bar over the named steps of a long command."""
    console = _stderr_console()
    if not (enabled and console.is_terminal):
        yield lambda _label: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}", markup=False), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("starting", total=None)

        def step(label: str) -> None:
            progress.update(task, description=label, advance=1)

        yield step


@contextlib.contextmanager
def bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar for work of known size: advance(done, total)."""
    console = _stderr_console()
    if not console.is_terminal:
        yield lambda _done, _total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield advance


@contextlib.contextmanager
def counter(label: str) -> Iterator[Callable[[int, object], None]]:
    """A running count for work of unknown size (downloads): advance(rows_so_far, last)."""
    console = _stderr_console()
    if not console.is_terminal:
        yield lambda _rows, _last=None: None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task(label, total=None)

        def advance(rows: int, last: object = None) -> None:
            suffix = f" (up to {last})" if last is not None else ""
            progress.update(task, description=f"{label}: {rows:,}{suffix}")

        yield advance


def exits_by_reason(fills) -> dict[str, int]:
    """Closed round trips by what closed them: the strategy's signal, the stop-loss or the take-profit."""
    counts = {"signal": 0, "stop_loss": 0, "take_profit": 0}
    qty = 0.0
    # a backtest's fills are columns: read them as such, not one Fill object (and Timestamp) each
    rows = fills.sides_qtys_reasons() if hasattr(fills, "sides_qtys_reasons") else (
        (f.side, f.qty, f.reason) for f in fills)
    for side, amount, reason in rows:
        qty = qty + amount if side == "buy" else reduce_position(qty, amount)
        if side == "sell" and qty == 0.0:  # flat again: a round trip closed
            counts[reason] = counts.get(reason, 0) + 1
            qty = 0.0
    return counts


def exits_line(fills) -> str:
    counts = exits_by_reason(fills)
    return ", ".join(f"{reason.replace('_', '-')} {n:,}" for reason, n in counts.items())


def print_metrics(config, ohlcv: pd.DataFrame, result) -> None:
    from rich.console import Console
    from rich.table import Table

    m = result.metrics
    from rich.text import Text

    # Text, not a str: the user's name is never read as rich markup ("[/]", "[link=...]")
    table = Table(title=Text(f"{config.name}: {config.strategy} on {config.symbol} {config.timeframe}"),
                  caption=Text(f"strategy version {result.version}, {len(ohlcv):,} bars "
                               f"{ohlcv.index[0]:%Y-%m-%d} to {ohlcv.index[-1]:%Y-%m-%d}"))
    table.add_column("metric")
    table.add_column("value", justify="right")
    pct = lambda v: "n/a" if v is None else f"{v * 100:,.2f}%"  # noqa: E731
    num = lambda v: "n/a" if v is None else f"{v:,.2f}"  # noqa: E731
    hold = float(ohlcv["close"].iloc[-1]) / float(ohlcv["close"].iloc[0]) - 1.0  # as the chart draws it
    rows = [
        ("total return", pct(m.total_return)),
        ("buy and hold", pct(hold)),
        ("CAGR", pct(m.cagr)),
        ("average monthly return", pct(m.monthly_return)),
        ("Sharpe (annualised)", num(m.sharpe)),
        ("Sortino (annualised)", num(m.sortino)),
        ("max drawdown", pct(m.max_drawdown)),
        ("trades", f"{m.trades:,}"),
        ("exits", exits_line(result.fills)),
        ("win rate", pct(m.win_rate)),
        ("profit factor", num(m.profit_factor)),
        ("exposure", pct(m.exposure)),
        ("final equity", f"{num(m.final_equity)} (from {config.capital:,.2f})"),
    ]
    for name, value in rows:
        table.add_row(name, Text(value))
    Console().print(table)

"""The position rules, shared by the backtest kernel and the daemon's risk engine.

Plain Python here: the kernel compiles these very functions with numba, and the daemon calls
them as they are, once per tick, without paying for numba's import (about 150 MB with LLVM).
Numba keeps IEEE arithmetic (no fastmath), so both give the same bits. Conventions:

* a position is sized to `want * stake * equity`, fee included, never more than the cash;
  reaching `want == 0` sells everything;
* market fills pay `slippage` against us; every fill pays `fee` on its notional;
* stop-loss and take-profit rest from the bar of entry on: a bar that opens beyond a level
  fills at its open; otherwise a low reaching the stop fills at the stop (a stop-market
  order: it slips), a high reaching the take-profit fills there (a limit: it does not); a
  bar reaching both is read as the stop first, since the order inside a bar is unknown.
"""

from __future__ import annotations

import math

from ..domain import OrderReason, Side, add_to_position, cash_change

__all__ = ["rebalance", "exit_hit", "close_out", "add_to_position"]

NONE, BUY, SELL = 0, 1, -1
SIGNAL, STOP_LOSS, TAKE_PROFIT = 0, 1, 2
SIDE_NAMES = {BUY: Side.BUY, SELL: Side.SELL}  # the kernel's codes in the domain's words
REASON_NAMES = {SIGNAL: OrderReason.SIGNAL, STOP_LOSS: OrderReason.STOP_LOSS, TAKE_PROFIT: OrderReason.TAKE_PROFIT}


def rebalance(want, qty, cash, price, stake, fee, slippage):
    """The market order that moves the position to exposure `want` at `price`.

    Returns (side, amount, fill_price, fee_paid, cash_change); side NONE when nothing is
    to be done. A buy's cash_change is exactly minus its budget (the fee is inside it).
    """
    current = qty * price
    if want <= 0.0 or want * stake * (cash + current) < current:
        amount = qty if want <= 0.0 else (current - want * stake * (cash + current)) / price
        if amount <= 0.0:
            return NONE, 0.0, 0.0, 0.0, 0.0
        fill = price * (1.0 - slippage)
        paid = amount * fill * fee
        return SELL, amount, fill, paid, cash_change(False, amount, fill, paid)
    budget = min(want * stake * (cash + current) - current, cash)
    if budget <= 0.0:
        return NONE, 0.0, 0.0, 0.0, 0.0
    fill = price * (1.0 + slippage)
    amount = budget / (fill * (1.0 + fee))
    paid = budget - amount * fill
    return BUY, amount, fill, paid, cash_change(True, amount, fill, paid)  # == -budget, bit for bit


def exit_hit(entry, open_, high, low, stop_loss, take_profit, slippage):
    """Whether a bar triggers the resting stop-loss or take-profit of a position entered at
    `entry` (levels <= 0 are off). Returns (reason, fill_price); reason -1 when neither."""
    stop_px = entry * (1.0 - stop_loss) if stop_loss > 0.0 else -math.inf
    limit_px = entry * (1.0 + take_profit) if take_profit > 0.0 else math.inf
    if open_ <= stop_px:
        return STOP_LOSS, open_ * (1.0 - slippage)
    if open_ >= limit_px:
        return TAKE_PROFIT, open_
    if low <= stop_px:
        return STOP_LOSS, stop_px * (1.0 - slippage)
    if high >= limit_px:
        return TAKE_PROFIT, limit_px
    return -1, 0.0


def close_out(qty, price, fee):
    """Selling the whole position at `price`: returns (fee_paid, cash_change)."""
    paid = qty * price * fee
    return paid, cash_change(False, qty, price, paid)

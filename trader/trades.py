"""Round trips (flat -> position -> flat) and profit and loss, from a book's fills in the
ledger: what `trader trades` lists and the P&L line of `trader status` adds up. Counted as
`store.closed_trades` counts them (fees in quote, whatever currency the exchange charged)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from .ledger.store import fee_in_quote


@dataclass(frozen=True)
class RoundTrip:
    entry_time: datetime
    exit_time: datetime | None  # None: still open
    qty: float  # the most held at once
    entry_price: float  # average of the buys
    exit_price: float | None  # average of the sells
    cost: float  # quote spent on the buys, fees included
    fees: float  # every fee of the trip, in quote
    pnl: float | None  # net, fees included (None while open)
    ret: float | None  # pnl / cost
    reason: str | None  # what closed it: signal, stop_loss, take_profit, halt

    def to_dict(self) -> dict:
        return asdict(self)


def round_trips(fills, base: str) -> list[RoundTrip]:
    """Every round trip of the fills (oldest first), the open one last."""
    closed, open_ = _walk(fills, base)
    return [t.done(when, reason) for t, when, reason in closed] + ([open_.done(None, None)] if open_ else [])


def _walk(fills, base: str):
    """The closed trips (with when and why they closed) and the open one, if any."""
    closed, t = [], None
    for f in fills:
        if t is None:
            if f.side != "buy":
                continue  # a sale of a position opened before this ledger's fills: nothing to pair
            t = _Trip(f.time)
        t.add(f, fee_in_quote(f, base))
        if f.side == "sell" and t.qty <= f.amount * 1e-9:  # flat again
            closed.append((t, f.time, f.reason))
            t = None
    return closed, t


class _Trip:
    def __init__(self, entry: datetime):
        self.entry, self.qty, self.peak, self.fees = entry, 0.0, 0.0, 0.0
        self.buy_qty = self.buy_value = self.cost = 0.0  # cost: the buys with their fees
        self.sell_qty = self.sell_value = self.proceeds = 0.0  # proceeds: the sales net of fees

    def add(self, f, fee: float) -> None:
        value = f.amount * f.price
        self.fees += fee
        if f.side == "buy":
            self.qty += f.amount
            self.buy_qty, self.buy_value, self.cost = self.buy_qty + f.amount, self.buy_value + value, self.cost + value + fee
            self.peak = max(self.peak, self.qty)
        else:
            self.qty -= f.amount
            self.sell_qty, self.sell_value = self.sell_qty + f.amount, self.sell_value + value
            self.proceeds += value - fee

    def done(self, exit_time: datetime | None, reason: str | None) -> RoundTrip:
        pnl = self.proceeds - self.cost if exit_time is not None else None
        return RoundTrip(entry_time=self.entry, exit_time=exit_time, qty=self.peak,
                         entry_price=self.buy_value / self.buy_qty,
                         exit_price=self.sell_value / self.sell_qty if self.sell_qty else None,
                         cost=self.cost, fees=self.fees, pnl=pnl,
                         ret=pnl / self.cost if pnl is not None and self.cost else None, reason=reason)

    def realised_so_far(self) -> float:
        """The sales out of a trip still open, against the average cost of what they sold."""
        return self.proceeds - self.cost * (self.sell_qty / self.buy_qty) if self.buy_qty else 0.0


def pnl(fills, base: str, qty: float, price: float | None) -> dict[str, float]:
    """Realised (closed trips, and sales out of the open one), unrealised (what is held, marked
    at `price`, against its average cost) and fees paid; quote currency, fees inside both P&Ls."""
    closed, t = _walk(fills, base)
    realised, unrealised = sum(c.proceeds - c.cost for c, _, _ in closed), 0.0
    if t is not None:
        realised += t.realised_so_far()
        held_cost = t.cost * (1.0 - t.sell_qty / t.buy_qty)
        unrealised = qty * price - held_cost if price is not None else 0.0
    return {"realised": realised, "unrealised": unrealised, "fees": sum(fee_in_quote(f, base) for f in fills)}

"""Round trips (flat -> position -> flat) and profit and loss, from a book's fills in the
ledger: what `trader trades` lists, the P&L line of `trader status` adds up and Hermes counts
as trades. Money and position by the domain's rules, fees in quote whatever currency the
exchange charged them in."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from .domain import Side, base_change, cash_change, reduce_position

# what a whole sale leaves of a trip below this share of its peak is dust (a fee taken from
# the base asset makes holdings off the market's step, and sales are floored to it): the trip
# is closed, and the dust rides along into the next one
DUST_SHARE = 1e-3


def fee_in_quote(fill, base: str) -> float:
    """A fill's fee in the quote currency: a fee taken from the base asset valued at the
    fill's price, one in a third currency (BNB) at the value booked with it."""
    if fill.fee_currency == base:
        return fill.fee * fill.price
    third = getattr(fill, "fee_quote", None)
    return third if third is not None else fill.fee


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


def closed_trades(fills, base: str) -> list[tuple[datetime, float]]:
    """(close time, net result, fees included) of each closed round trip, oldest first."""
    return [(when, t.proceeds - t.cost) for t, when, _ in _walk(fills, base)[0]]


def _walk(fills, base: str):
    """The closed trips (with when and why they closed) and the open one, if any."""
    closed, t = [], None
    for f in fills:
        if t is None:
            if f.side != Side.BUY:
                continue  # a sale of a position opened before this ledger's fills: nothing to pair
            t = _Trip(f.time)
        t.add(f, base)
        if f.side == Side.SELL and t.qty <= t.peak * DUST_SHARE:  # flat again
            closed.append((t, f.time, f.reason))
            t = None
    return closed, t


class _Trip:
    def __init__(self, entry: datetime):
        self.entry, self.qty, self.peak, self.fees = entry, 0.0, 0.0, 0.0
        self.buy_qty = self.buy_value = self.cost = 0.0  # cost: the buys with their fees
        self.received = self.sold = 0.0  # the base the buys added and the sales took, fees in it included
        self.sell_qty = self.sell_value = self.proceeds = 0.0  # proceeds: the sales net of fees

    def add(self, f, base: str) -> None:
        # the cash each fill moved, with a third currency's fee (BNB) counted as paid in cash;
        # a fee taken from the base asset is in the quantity held instead
        value = f.amount * f.price
        fee = fee_in_quote(f, base)
        paid = fee if f.fee_currency != base else 0.0
        self.fees += fee
        moved = base_change(f.side == Side.BUY, f.amount, f.fee, f.fee_currency == base)
        if f.side == Side.BUY:
            self.qty += moved
            self.received += moved
            self.buy_qty, self.buy_value = self.buy_qty + f.amount, self.buy_value + value
            self.cost -= cash_change(True, f.amount, f.price, paid)
            self.peak = max(self.peak, self.qty)
        else:
            self.qty = reduce_position(self.qty, -moved)
            self.sold -= moved
            self.sell_qty, self.sell_value = self.sell_qty + f.amount, self.sell_value + value
            self.proceeds += cash_change(False, f.amount, f.price, paid)

    def done(self, exit_time: datetime | None, reason: str | None) -> RoundTrip:
        pnl = self.proceeds - self.cost if exit_time is not None else None
        return RoundTrip(entry_time=self.entry, exit_time=exit_time, qty=self.peak,
                         entry_price=self.buy_value / self.buy_qty,
                         exit_price=self.sell_value / self.sell_qty if self.sell_qty else None,
                         cost=self.cost, fees=self.fees, pnl=pnl,
                         ret=pnl / self.cost if pnl is not None and self.cost else None, reason=reason)

    def realised_so_far(self) -> float:
        """The sales out of a trip still open, against the average cost of what they sold."""
        return self.proceeds - self.cost * (self.sold / self.received) if self.received else 0.0


def pnl(fills, base: str, qty: float, price: float | None) -> dict[str, float]:
    """Realised (closed trips, and sales out of the open one), unrealised (what is held, marked
    at `price`, against its average cost) and fees paid; quote currency, fees inside both P&Ls."""
    closed, t = _walk(fills, base)
    realised, unrealised = sum(c.proceeds - c.cost for c, _, _ in closed), 0.0
    if t is not None:
        realised += t.realised_so_far()
        held_cost = t.cost * (1.0 - t.sold / t.received)
        unrealised = qty * price - held_cost if price is not None else 0.0
    return {"realised": realised, "unrealised": unrealised, "fees": sum(fee_in_quote(f, base) for f in fills)}

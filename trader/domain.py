"""The trading vocabulary every layer speaks, from the candle to the ledger.

The feed hands the engine a `MarketView`; the risk engine answers with an `OrderPlan` (or an
`OrderDenied`); the broker reports an `Execution` with its `FillReport`s; the ledger books
them. Money moves by one rule, `cash_change`, which the backtest kernel (compiled), the risk
engine, the brokers and the ledger all call, so a fill changes the quote balance by the same
bits everywhere. Positions move by `add_to_position` and `reduce_position`, likewise shared,
by what `base_change` says a fill moves (net of a fee the exchange took in the base asset).

Plain Python with no I/O and no heavy imports: the daemon's tick and the CLI's cheap commands
load it without pandas or numba.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the view is built by the feeds, which import pandas
    import pandas as pd


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderReason(StrEnum):
    """Why an order was placed; the letter ends its client order id."""

    SIGNAL = "signal"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    HALT = "halt"


class OrderType(StrEnum):
    """MARKET: traded at once; STOP_MARKET: a protective stop resting on the exchange, sold at
    market once the price reaches its level; TAKE_PROFIT: a limit sell resting on the exchange
    at the take-profit level, the other leg of an OCO list with the stop."""

    MARKET = "market"
    STOP_MARKET = "stop_market"
    TAKE_PROFIT = "take_profit"


class OrderStatus(StrEnum):
    """intent (committed before the exchange is called) -> open | filled | canceled | expired |
    rejected; unknown: the call failed in a way that leaves the outcome open (reconcile by
    client order id); not_sent: reconciliation proved the exchange never saw it."""

    INTENT = "intent"
    OPEN = "open"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    NOT_SENT = "not_sent"

    @property
    def unresolved(self) -> bool:
        """The ledger does not know this order's outcome yet: settle it with the broker."""
        return self in UNRESOLVED

    @classmethod
    def of_exchange(cls, status: str, filled: float) -> OrderStatus:
        """An exchange's (ccxt's) order status in our words. An order the exchange ended after
        a partial fill (canceled, expired) is filled as far as it went: its fills stand."""
        if status == "closed":
            return cls.FILLED
        if status in ("canceled", "expired") and filled:
            return cls.FILLED
        return cls(status)


UNRESOLVED = frozenset({OrderStatus.INTENT, OrderStatus.UNKNOWN, OrderStatus.OPEN})


class TradingState(StrEnum):
    """Whether the book may open positions; only `trader.halts` changes it."""

    RUNNING = "running"
    HALTED = "halted"


# -- money and positions: one rule each ---------------------------------------------------------

def cash_change(buying: bool, amount: float, price: float, fee: float) -> float:
    """The quote balance a fill moves: a buy pays its notional and the fee, a sell receives
    its notional less the fee (`fee` in the quote currency; 0 when charged in another).

    A buy the risk rules sized from a budget pays exactly that budget: its fee is `budget -
    notional`, an exact subtraction (the two are within a factor of two), so the sum here
    gives the budget's own bits back."""
    notional = amount * price
    return -(notional + fee) if buying else notional - fee


def add_to_position(qty: float, entry: float, amount: float, fill: float) -> tuple[float, float]:
    """A buy of `amount` at `fill` added to a position: (qty, average entry price)."""
    if qty <= 0.0:
        return amount, fill
    return qty + amount, (entry * qty + fill * amount) / (qty + amount)


def base_change(buying: bool, amount: float, fee: float, fee_in_base: bool) -> float:
    """What a fill moves the base asset held by: a fee charged in the base currency (Binance's
    default on a buy: buy 1 BTC, hold 0.999) comes off what is received or on top of what
    is sold; a fee charged elsewhere does not touch it."""
    fee = fee if fee_in_base else 0.0
    return amount - fee if buying else -(amount + fee)


def reduce_position(qty: float, amount: float) -> float:
    """What a sale of `amount` leaves; dust below a millionth of the sale is a float artefact
    (a sum of partial fills a hair off the total), not a position."""
    remaining = qty - amount
    return 0.0 if remaining <= amount * 1e-9 else remaining


# -- the market and its orders ------------------------------------------------------------------

def split_symbol(symbol: str) -> tuple[str, str]:
    """'BTC/USDT' (or ccxt's 'BTC/USDT:USDT') -> ('BTC', 'USDT')."""
    base, quote = symbol.split("/", 1)
    return base, quote.split(":", 1)[0]


_PURPOSE = {OrderReason.SIGNAL: "e", OrderReason.STOP_LOSS: "s", OrderReason.TAKE_PROFIT: "t",
            OrderReason.HALT: "h"}


def client_order_id(book: str, version: str, bar_time: datetime, reason: OrderReason) -> str:
    """Deterministic: the same decision on the same bar always gets the same id, so a
    retried or replayed tick can find its order instead of placing a second one. At most
    36 characters from [A-Za-z0-9-] (Binance's limit is the tightest we know)."""
    return f"ht-{book[:8]}-{version[:8]}-{int(bar_time.timestamp())}-{_PURPOSE[reason]}"


def protective_order_id(book: str, version: str, bar_time: datetime, leg: str = "p") -> str:
    """The stop placed (or resized) on the exchange at this bar's tick: at most one per tick,
    so the id is as deterministic as the decision's own. An OCO list placed with it names its
    take-profit leg `q` and the list itself `o`."""
    assert leg in ("p", "q", "o")  # letters no decision of _PURPOSE uses
    return f"ht-{book[:8]}-{version[:8]}-{int(bar_time.timestamp())}-{leg}"


@dataclass(frozen=True)
class MarketView:
    """What one tick sees: the closed bars and where an order sent now is modeled to fill."""

    bars: pd.DataFrame  # closed bars, oldest first; the last one has just closed
    next_open: float | None  # the open of the bar in progress (None at the end of a replay)
    next_time: datetime | None  # its open time (a pandas Timestamp, or a UTC datetime from a replay)
    ohlc: tuple[float, float, float, float] | None = None  # the last bar, when the feed has it handy
    bar_utc: datetime | None = None  # bar_time as a UTC datetime, when the feed has it handy

    @property
    def bar_time(self) -> pd.Timestamp:
        return self.bars.index[-1]

    def last_ohlc(self) -> tuple[float, float, float, float]:
        """The bar that just closed, as floats."""
        if self.ohlc is not None:
            return self.ohlc
        bars = self.bars
        return (float(bars["open"].iat[-1]), float(bars["high"].iat[-1]),
                float(bars["low"].iat[-1]), float(bars["close"].iat[-1]))


@dataclass(frozen=True)
class OrderPlan:
    """A market order the risk engine allows, with its modeled execution."""

    side: Side
    amount: float
    price: float  # the modeled fill price (slippage included)
    fee: float  # the modeled fee, in the quote currency
    reason: OrderReason


@dataclass(frozen=True)
class OrderDenied:
    """The risk engine's refusal, with the reason shown to the user."""

    reason: str


@dataclass(frozen=True)
class FillReport:
    """A fill as a broker (or the exchange adapter) reports it, before it is in the ledger."""

    trade_id: str
    side: Side
    amount: float
    price: float
    fee: float
    fee_currency: str
    time: datetime  # UTC
    exchange_order_id: str | None = None
    client_order_id: str | None = None
    # a fee charged in a third currency (BNB), valued in the quote currency when it was
    # booked; None when the fee is in the base or quote currency, or could not be valued
    fee_quote: float | None = None

    def base_change(self, base: str) -> float:
        """The base asset this fill moves, net of a fee charged in it."""
        return base_change(self.side == Side.BUY, self.amount, self.fee, self.fee_currency == base)

    def cash_change(self, quote: str) -> float:
        """The quote balance this fill moves (a fee charged in another currency is not cash)."""
        return cash_change(self.side == Side.BUY, self.amount, self.price,
                           self.fee if self.fee_currency == quote else 0.0)


@dataclass(frozen=True)
class Execution:
    """What became of an order: its status and its fills."""

    status: OrderStatus
    fills: tuple[FillReport, ...] = ()
    error: str | None = None
    exchange_order_id: str | None = None
    # not at the exchange yet, but its request could still arrive for this many seconds:
    # nothing is decided about it until then
    in_flight_for: float | None = None

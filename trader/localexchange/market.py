"""Market data of the local exchange: the symbol's trading rules and the candles as of a time.

Only what the clock has revealed is ever served: candles whose open time is <= now. The
candle in progress is known only by its open (o=h=l=c=open, volume 0), and that open is the
"current price" everything trades at.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

COLUMNS = ("open", "high", "low", "close", "volume")
# Binance's kline interval names, by length in ms ("1M" is calendar-based and not served).
INTERVALS = {
    60_000: "1m", 180_000: "3m", 300_000: "5m", 900_000: "15m", 1_800_000: "30m",
    3_600_000: "1h", 7_200_000: "2h", 14_400_000: "4h", 21_600_000: "6h", 28_800_000: "8h",
    43_200_000: "12h", 86_400_000: "1d", 259_200_000: "3d", 604_800_000: "1w",
}
DAY_MS = 86_400_000


def dec(value: object) -> Decimal:
    """A Decimal from a float/str/int without binary noise (0.1 -> Decimal('0.1'))."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


def fmt(value: Decimal | float | int) -> str:
    """Binance's number format: a string with 8 decimals."""
    return f"{dec(value):.8f}"


@dataclass(frozen=True)
class SymbolSpec:
    """One spot market and its filters, as exchangeInfo lists them."""

    symbol: str  # unified, "BTC/USDT"
    base: str
    quote: str
    tick: Decimal = Decimal("0.01")
    step: Decimal = Decimal("0.00001")
    min_qty: Decimal = Decimal("0.00001")
    max_qty: Decimal = Decimal("9000")
    min_price: Decimal = Decimal("0.01")
    max_price: Decimal = Decimal("1000000")
    min_notional: Decimal = Decimal("10")
    max_notional: Decimal = Decimal("9000000")
    precision: int = 8  # base/quote asset precision: more decimals than this is -1111
    # what this exchange matches; without STOP_LOSS it is an exchange with no stop orders
    order_types: tuple[str, ...] = ("LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS")
    oco: bool = True  # OCO order lists (a LIMIT_MAKER and a STOP_LOSS leg) allowed

    @classmethod
    def parse(cls, symbol: str) -> SymbolSpec:
        base, sep, quote = symbol.partition("/")
        if not sep or not base or not quote or not base.isalnum() or not quote.isalnum():
            raise ValueError(f"symbol {symbol!r}: expected BASE/QUOTE, like BTC/USDT")
        return cls(symbol=f"{base.upper()}/{quote.upper()}", base=base.upper(), quote=quote.upper())

    @property
    def id(self) -> str:
        return self.base + self.quote

    def exchange_info_entry(self) -> dict:
        return {
            "symbol": self.id,
            "status": "TRADING",
            "baseAsset": self.base,
            "baseAssetPrecision": self.precision,
            "quoteAsset": self.quote,
            "quotePrecision": self.precision,
            "quoteAssetPrecision": self.precision,
            "baseCommissionPrecision": self.precision,
            "quoteCommissionPrecision": self.precision,
            "orderTypes": list(self.order_types),
            "icebergAllowed": False,
            "ocoAllowed": self.oco and {"STOP_LOSS", "LIMIT_MAKER"} <= set(self.order_types),
            "otoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "amendAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": fmt(self.min_price), "maxPrice": fmt(self.max_price),
                 "tickSize": fmt(self.tick)},
                {"filterType": "LOT_SIZE", "minQty": fmt(self.min_qty), "maxQty": fmt(self.max_qty),
                 "stepSize": fmt(self.step)},
                {"filterType": "NOTIONAL", "minNotional": fmt(self.min_notional), "applyMinToMarket": True,
                 "maxNotional": fmt(self.max_notional), "applyMaxToMarket": False, "avgPriceMins": 5},
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }


class Candles:
    """A candle frame (UTC DatetimeIndex; open/high/low/close/volume) queried as of a time."""

    def __init__(self, frame: pd.DataFrame, tick: Decimal) -> None:
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"candles: missing columns {missing}; expected {list(COLUMNS)}")
        if not isinstance(frame.index, pd.DatetimeIndex) or frame.index.tz is None:
            raise ValueError("candles: expected a tz-aware (UTC) DatetimeIndex of open times")
        if len(frame) < 2:
            raise ValueError("candles: need at least two candles (the clock starts at the second)")
        frame = frame.sort_index()
        times = frame.index.tz_convert("UTC").as_unit("ms").asi8.astype(np.int64)
        spacing = np.diff(times)
        if (spacing <= 0).any():
            raise ValueError("candles: open times must be unique")
        # The most common spacing is the timeframe; larger steps are gaps in the data.
        values, counts = np.unique(spacing, return_counts=True)
        self.interval_ms = int(values[np.argmax(counts)])
        self.interval = INTERVALS.get(self.interval_ms)
        self.times = times
        self.values = frame[list(COLUMNS)].to_numpy(dtype=float)
        self.tick = tick

    def __len__(self) -> int:
        return len(self.times)

    # -- as of a time ----------------------------------------------------------------------

    def revealed(self, now: int) -> int:
        """How many candles have opened by `now` (they are the first that many)."""
        return int(np.searchsorted(self.times, now, side="right"))

    def is_closed(self, i: int, now: int) -> bool:
        return int(self.times[i]) + self.interval_ms <= now

    def price(self, value: float) -> Decimal:
        """A candle price on the tick grid (fills must be valid prices)."""
        return dec(repr(float(value))).quantize(self.tick, rounding=ROUND_HALF_UP)

    def current_price(self, now: int) -> Decimal | None:
        """The open of the candle in progress; in a data gap or after the data, the last close."""
        n = self.revealed(now)
        if n == 0:
            return None  # before the first candle: the market has not opened
        i = n - 1
        return self.price(self.values[i, 0] if not self.is_closed(i, now) else self.values[i, 3])

    def known(self, i: int, now: int) -> tuple[float, float, float, float, float]:
        """(o, h, l, c, v) of candle i as far as `now` reveals it."""
        o, h, l, c, v = (float(x) for x in self.values[i])
        if self.is_closed(i, now):
            return o, h, l, c, v
        return o, o, o, o, 0.0

    def open_time(self, i: int) -> int:
        return int(self.times[i])

    def first_at_or_after(self, ms: int) -> int:
        return int(np.searchsorted(self.times, ms, side="left"))

    # -- API shapes ------------------------------------------------------------------------

    def klines(self, now: int, start: int | None, end: int | None, limit: int) -> list[list]:
        """Binance's klines rows: forward from startTime, else the newest up to endTime/now."""
        n = self.revealed(now if end is None else min(now, end))
        lo = self.first_at_or_after(start) if start is not None else 0
        rows = range(lo, min(n, lo + limit)) if start is not None else range(max(lo, n - limit), n)
        return [self._kline(i, now) for i in rows]

    def _kline(self, i: int, now: int) -> list:
        t = self.open_time(i)
        o, h, l, c, v = self.known(i, now)
        quote = v * (o + c) / 2
        trades = 100 + i % 900 if v else 0
        return [
            t, fmt(self.price(o)), fmt(self.price(h)), fmt(self.price(l)), fmt(self.price(c)), f"{v:.8f}",
            t + self.interval_ms - 1, f"{quote:.8f}", trades, f"{v / 2:.8f}", f"{quote / 2:.8f}", "0",
        ]

    def window_24h(self, now: int) -> tuple[list[tuple[float, float, float, float, float]], int]:
        """The known candles of the last 24 hours, and the first one's open time."""
        n = self.revealed(now)
        lo = self.first_at_or_after(now - DAY_MS)
        return [self.known(i, now) for i in range(lo, n)], (self.open_time(lo) if lo < n else now - DAY_MS)

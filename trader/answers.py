"""Reading `trader init`'s answers, typed at its questions or given as flags: numbers (5% is
0.05, thousands separators allowed), fractions and ranges, the starting capital, a ccxt
exchange id, a market, a timeframe the exchange offers and a strategy of the library. Each
parser returns the value or raises ValueError saying what was expected: a question shows it
and asks again, a flag's is an error (exit 2)."""

from __future__ import annotations

import difflib
import math
import re
from typing import Callable

from .scaffold import pct

OFF = {"none", "null", "off", "no", "-"}  # answers that turn an optional setting off


def number(text: str) -> float:
    """A number; '5%' is 0.05, and thousands separators are allowed."""
    t = str(text).strip().replace(",", "").replace("_", "").lstrip("$")
    percent = t.endswith("%")
    try:
        value = float(t.rstrip("%").strip())
    except ValueError:
        raise ValueError(f"{str(text).strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return round(value / 100, 12) if percent else value


def fraction(low: float, high: float, *, high_ok: bool = False, low_ok: bool = False,
             optional: bool = False) -> Callable[[str], float | None]:
    def parse(text: str) -> float | None:
        if optional and str(text).strip().lower() in OFF:
            return None
        value = number(text)
        if (value >= low if low_ok else value > low) and (value <= high if high_ok else value < high):
            return value
        span = f"{'at least' if low_ok else 'above'} {pct(low)} and {'at most' if high_ok else 'below'} {pct(high)}"
        hint = "; write a fraction like 0.05 or a percentage like 5%" + (", or none to turn it off" if optional else "")
        raise ValueError(f"{str(text).strip()} is not {span}{hint}")
    return parse


def ranged(low: float, high: float, what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = number(text)
        if not low <= value <= high:
            raise ValueError(f"{what} must be between {low:g} and {high:g}, got {value:g}")
        return value
    return parse


def capital(text: str) -> float:
    value = number(text.replace("%", "?"))  # a percentage of nothing is not a balance
    if value <= 0 or value > 1e12:
        raise ValueError(f"the capital must be a positive amount of the quote currency, like 10000, got {text.strip()}")
    return value


def exchange(text: str) -> str:
    from .config import _ccxt_exchanges

    name = text.strip().lower()
    known = _ccxt_exchanges()
    if name not in known:
        close = difflib.get_close_matches(name, sorted(known), n=3)
        hint = f"; did you mean: {', '.join(close)}" if close else ", like coinbase, kraken or binance"
        raise ValueError(f"exchange {name!r} is not known to ccxt: expected a ccxt exchange id{hint}")
    return name


def symbol(text: str) -> str:
    value = text.strip().upper()
    if not re.fullmatch(r"[A-Z0-9._-]+/[A-Z0-9._-]+(:[A-Z0-9._-]+)?", value):
        raise ValueError(f"{text.strip()!r} is not a market: expected BASE/QUOTE like BTC/USDT")
    return value


def offered(exchange: str) -> tuple[str, ...]:
    from .config import _exchange_timeframes

    from .timeframes import timeframe_seconds

    try:
        offered = _exchange_timeframes(exchange)
    except Exception:  # an exchange class that cannot be built offline: no list to check against
        return ()
    usable = []
    for timeframe in offered:  # the daemon has no fixed length for e.g. "1M" (months)
        try:
            timeframe_seconds(timeframe)
            usable.append(timeframe)
        except ValueError:
            pass
    return tuple(usable)


def timeframe(exchange: str) -> Callable[[str], str]:
    from .timeframes import timeframe_seconds

    def parse(text: str) -> str:
        value = text.strip()
        timeframe_seconds(value)  # ValueError says what is expected
        choices = offered(exchange)
        if choices and value not in choices:
            raise ValueError(f"{exchange} has no {value!r} candles; expected one of: {', '.join(choices)}")
        return value
    return parse


def strategy(text: str) -> str:
    import strategies

    value = text.strip()
    if value not in strategies.REGISTRY:
        raise ValueError(f"unknown strategy {value!r}; expected one of: {', '.join(sorted(strategies.REGISTRY))}")
    return value

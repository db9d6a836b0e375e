"""What can go wrong between a daemon and its exchange, played by the local exchange on
request: latency, rate limits and bans, 5xx and maintenance, a proxy's 504, an order placed
but its answer lost, a truncated body, a clock out of step; and orders that do not simply
fill: left open, partly filled, expired, rejected after the exchange accepted them. It is how you rehearse a
deployment's behaviour (retries, halts, notifications, reconciliation) before real money
meets a real outage:

    python -m trader.localexchange --data FILE --fault 'drop_after_accept on POST /api/v3/order'

or from Python, on a running LocalExchange:

    exchange.inject("POST /api/v3/order", drop_after_accept())
    exchange.inject("/api/v3/ticker/*", latency(2.0), times=3)
    exchange.inject("*", rate_limited(retry_after=7))
    exchange.inject("POST /api/v3/order", expire(parts=1))   # one part fills, the rest expires

A pattern is an fnmatch glob matched against "METHOD /path" and against "/path". Every rule
that matches a request applies to it and uses up one of its `times` (None: forever). All
methods are thread-safe.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import Callable


@dataclass(frozen=True)
class Latency:
    """Wait this long before handling the request (which is still handled: a client that timed
    out may have placed an order anyway)."""

    seconds: float


@dataclass(frozen=True)
class HttpError:
    """Answer with this status and Binance error body instead of handling the request."""

    status: int
    code: int | None
    msg: str
    retry_after: float | None = None
    raw_body: str | None = None  # served as-is (text/html) instead of the JSON body, e.g. a proxy's page


@dataclass(frozen=True)
class DropAfterAccept:
    """Handle the request (an order is placed), then close the connection without answering."""


@dataclass(frozen=True)
class Malformed:
    """Answer 200 with a truncated JSON body; `process` says whether the request is handled first."""

    process: bool = True


@dataclass(frozen=True)
class ClockSkew:
    """Judge the request's timestamp as if the exchange's wall clock were `ms` ahead (or behind)."""

    ms: int


class Fate(StrEnum):
    """What becomes of a MARKET order after the exchange accepted it (Binance's statuses)."""

    STAY_OPEN = "stay_open"  # NEW / PARTIALLY_FILLED; the rest fills one part per later candle
    EXPIRE = "expire"  # EXPIRED at once after the parts filled (an IOC/FOK remainder, no liquidity)
    EXPIRE_LATER = "expire_later"  # open until the next candle opens, then EXPIRED
    REJECT_LATER = "reject_later"  # NEW, then REJECTED when the next candle opens; nothing fills


@dataclass(frozen=True)
class OrderFate:
    """The order placed by the request is accepted, `parts` of its partial fills (see
    `partial_fills`) fill at once, and the rest goes as `fate` says."""

    fate: Fate
    parts: int = 0


Fault = Latency | HttpError | DropAfterAccept | Malformed | ClockSkew | OrderFate


# -- the usual suspects ------------------------------------------------------------------


def latency(seconds: float) -> Latency:
    return Latency(seconds)


def http_error(status: int, code: int | None, msg: str, retry_after: float | None = None) -> HttpError:
    return HttpError(status, code, msg, retry_after)


def rate_limited(retry_after: float = 1, status: int = 429) -> HttpError:
    """429 (or 418 once banned), as Binance answers too much request weight."""
    msg = (
        "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
        "Please use WebSocket Streams for live updates to avoid polling the API."
    )
    return HttpError(status, -1003, msg, retry_after)


def banned(retry_after: float = 120) -> HttpError:
    return HttpError(418, -1003, "Way too much request weight used; IP banned until further notice.", retry_after)


def server_error(status: int = 503, retry_after: float | None = None) -> HttpError:
    if status == 503:
        return HttpError(503, -1008, "Server is currently overloaded with other requests. Please try again in a few minutes.",
                         retry_after)
    return HttpError(status, -1001, "Internal error; unable to process your request. Please try again.", retry_after)


def maintenance(retry_after: float | None = None) -> HttpError:
    return HttpError(503, 1, "System is under maintenance.", retry_after)


def gateway_timeout() -> HttpError:
    """A proxy's 504: no Binance body, and the request's fate is unknown."""
    return HttpError(504, None, "Gateway Timeout", None, "<html><body><h1>504 Gateway Time-out</h1></body></html>")


def drop_after_accept() -> DropAfterAccept:
    return DropAfterAccept()


def malformed(process: bool = True) -> Malformed:
    return Malformed(process)


def clock_skew(ms: int) -> ClockSkew:
    return ClockSkew(ms)


def stay_open(parts: int = 0) -> OrderFate:
    return OrderFate(Fate.STAY_OPEN, parts)


def expire(parts: int = 0) -> OrderFate:
    return OrderFate(Fate.EXPIRE, parts)


def expire_later(parts: int = 0) -> OrderFate:
    return OrderFate(Fate.EXPIRE_LATER, parts)


def reject_later() -> OrderFate:
    return OrderFate(Fate.REJECT_LATER, 0)


# -- the command line's --fault -------------------------------------------------------------

# name -> (the fault, given the optional argument; what the argument is)
KINDS: dict[str, tuple[Callable[[float | None], Fault], str]] = {
    "latency": (lambda a: latency(1.0 if a is None else a), "seconds (default 1)"),
    "rate_limited": (lambda a: rate_limited(1 if a is None else a), "Retry-After seconds (default 1)"),
    "banned": (lambda a: banned(120 if a is None else a), "Retry-After seconds (default 120)"),
    "server_error": (lambda a: server_error(503 if a is None else int(a)), "HTTP status (default 503)"),
    "maintenance": (lambda a: maintenance(a), "Retry-After seconds (default none)"),
    "gateway_timeout": (lambda a: gateway_timeout(), "no argument"),
    "drop_after_accept": (lambda a: drop_after_accept(), "no argument"),
    "malformed": (lambda a: malformed(), "no argument"),
    "clock_skew": (lambda a: clock_skew(int(1000 if a is None else a)), "milliseconds (default 1000)"),
    "stay_open": (lambda a: stay_open(int(a or 0)), "parts filled at once (default 0)"),
    "expire": (lambda a: expire(int(a or 0)), "parts filled before it expires (default 0)"),
    "expire_later": (lambda a: expire_later(int(a or 0)), "parts filled before it expires next candle (default 0)"),
    "reject_later": (lambda a: reject_later(), "no argument"),
}
SPEC_FORM = "KIND[:ARG] [on PATTERN] [times N|always], like 'rate_limited:7 on POST /api/v3/order times 3'"
_SPEC = re.compile(r"(?P<kind>\w+)(?::(?P<arg>\S+))?(?:\s+on\s+(?P<pattern>.+?))?"
                   r"(?:\s+times\s+(?P<times>\d+|always))?")


def parse_spec(text: str) -> tuple[str, Fault, int | None]:
    """(pattern, fault, times) from a --fault value; ValueError says the expected form. The
    pattern defaults to every request, times to once."""
    match = _SPEC.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r}: expected {SPEC_FORM}")
    kind = match["kind"]
    if kind not in KINDS:
        raise ValueError(f"{text!r}: unknown fault {kind!r}; expected one of: {', '.join(KINDS)}")
    make, takes = KINDS[kind]
    try:
        arg = None if match["arg"] is None else float(match["arg"])
    except ValueError:
        raise ValueError(f"{text!r}: {match['arg']!r} is not a number; {kind} takes {takes}") from None
    times = match["times"]
    count = None if times == "always" else int(times or 1)
    if count == 0:
        raise ValueError(f"{text!r}: times must be at least 1, or always")
    return match["pattern"] or "*", make(arg), count


# -- the registry --------------------------------------------------------------------------


@dataclass
class _Rule:
    pattern: str
    fault: Fault
    remaining: int | None


class FaultInjector:
    """Rules queued by `inject` (or the command line's --fault), consumed by requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self.applied: list[tuple[str, Fault]] = []  # ("METHOD /path", fault), in order

    def inject(self, pattern: str, fault: Fault, times: int | None = 1) -> None:
        if not isinstance(fault, (Latency, HttpError, DropAfterAccept, Malformed, ClockSkew, OrderFate)):
            raise TypeError(f"not a fault: {fault!r}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 (or None for every request)")
        with self._lock:
            self._rules.append(_Rule(pattern, fault, times))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def pending(self) -> int:
        """How many rules still have uses left."""
        with self._lock:
            return len(self._rules)

    def take(self, method: str, path: str) -> list[Fault]:
        """The faults for this request, in the order they were injected."""
        request = f"{method} {path}"
        taken: list[Fault] = []
        with self._lock:
            for rule in list(self._rules):
                if fnmatch.fnmatchcase(request, rule.pattern) or fnmatch.fnmatchcase(path, rule.pattern):
                    taken.append(rule.fault)
                    self.applied.append((request, rule.fault))
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining == 0:
                            self._rules.remove(rule)
        return taken

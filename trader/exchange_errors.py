"""How ccxt's exceptions become trader.errors classes: the one table behind every call of the
exchange adapter (`ExchangeAdapter._call`), so the daemon decides on our classes, never on ccxt's.

* network trouble, timeouts, rate limits (429/418), 5xx, maintenance, bad response bodies,
  rejected timestamps -> TemporaryExchangeError, with `retry_after` (seconds, or None) taken
  from the response's Retry-After header. Every TemporaryExchangeError raised here has it.
* creating an order: a timeout, a dropped connection, a 5xx or an unreadable answer means the
  order may or may not exist -> OrderOutcomeUnknown (a TemporaryExchangeError): reconcile with
  fetch_order(client_order_id) before sending again. Rate limits, bans, maintenance and
  rejected timestamps are answered before the order is looked at -> OrderRefused (also a
  TemporaryExchangeError): it was not placed; wait `retry_after` before the next request.
* InsufficientFunds -> InsufficientFunds; invalid orders and bad requests on order calls
  (filters, duplicate client id, cancelling an order that is not open) -> OrderRejected.
* bad keys, missing permissions, unknown symbol, anything else -> OperationalExchangeError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import ccxt

from trader.errors import (
    ExchangeError,
    InsufficientFunds,
    OperationalExchangeError,
    OrderOutcomeUnknown,
    OrderRefused,
    OrderRejected,
    TemporaryExchangeError,
)
from trader.exchange_client import HttpStatus

E = TypeVar("E", bound=ExchangeError)


def translate(action: str, exc: BaseException, *, status: HttpStatus, wait: float | None,
              scrub: Callable[[str], str], on_order: bool, placing: bool) -> ExchangeError:
    """Our error for a ccxt exception raised by `action`; `wait` is the answer's Retry-After."""
    text = f"{action}: {type(exc).__name__}: {scrub(str(exc))}"
    if isinstance(exc, ccxt.InsufficientFunds):
        return InsufficientFunds(text)
    if isinstance(exc, (ccxt.AuthenticationError, ccxt.BadSymbol, ccxt.NotSupported, ccxt.ArgumentsRequired)):
        return OperationalExchangeError(text)
    if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection, ccxt.OnMaintenance, ccxt.InvalidNonce)):
        # Refused before the request was looked at: nothing happened, retrying is safe.
        return with_retry_after(OrderRefused(text) if placing else TemporaryExchangeError(text), wait)
    if status.last in (404, 405):
        # ccxt calls these "not available", but a missing endpoint does not come back by
        # retrying: a wrong TRADER_EXCHANGE_URL or an API the exchange retired.
        return OperationalExchangeError(text)
    if isinstance(exc, (ccxt.NetworkError, ccxt.OperationFailed)) or status.server_error():
        return with_retry_after(OrderOutcomeUnknown(text) if placing else TemporaryExchangeError(text), wait)
    if on_order and isinstance(exc, (ccxt.InvalidOrder, ccxt.BadRequest)):
        return OrderRejected(text)
    return OperationalExchangeError(text)


def with_retry_after(exc: E, retry_after: float | None) -> E:
    exc.retry_after = retry_after  # type: ignore[attr-defined]
    return exc

"""Exceptions that decide the response.

`InputError` and its children are the user's to fix (a file, a flag): the CLI prints the
message and exits 2, never a traceback. Each message names the file, the field or row,
and what was expected.
"""

from __future__ import annotations


class InputError(Exception):
    """Bad input from the user: printed as-is, exit code 2."""

    exit_code = 2


class ConfigError(InputError):
    """A strategy or goals file that cannot be used."""


class DataError(InputError):
    """An OHLCV file or download that cannot be used."""


class StrategyError(Exception):
    """The strategy function failed or broke its contract: disable it and report."""


class ExchangeError(Exception):
    """Base for errors coming from an exchange, translated at the adapter."""


class TemporaryExchangeError(ExchangeError):
    """Network trouble, timeouts, rate limits, maintenance: retry with backoff."""


class OperationalExchangeError(ExchangeError):
    """Bad symbol, rejected credentials, insufficient funds: halt and alert."""


class OrderOutcomeUnknown(TemporaryExchangeError):
    """An order request got no usable answer (timeout, dropped connection, 5xx, bad body): the
    order may or may not exist. Reconcile by its client order id before sending it again."""


class OrderRefused(TemporaryExchangeError):
    """The exchange turned an order request away before looking at it (rate limit, ban,
    rejected timestamp): the order was not placed. Wait `retry_after`, then decide again."""


class InsufficientFunds(OperationalExchangeError):
    """The exchange refused an order for lack of balance."""


class OrderRejected(OperationalExchangeError):
    """The exchange refused an order request as invalid: filters (step, minimum amount or
    notional), a duplicate open client order id, or a cancel of an order that is not open."""

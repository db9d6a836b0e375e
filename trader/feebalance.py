"""The book's balance of a third currency the exchange takes fees in (BNB on Binance).

The exchange holds it and spends it on every fill, so the ledger keeps it too, as a balance
row beside the base and the quote (`store.record_fill` takes each fill's fee off it); else
the ledger could not be checked against the exchange's holding. The bot never buys it, so
its starting amount is the exchange's: the row is seeded from the exchange's holding when the
first fee in it is booked (`seed`), and each start compares it with the exchange once every
order of the book is settled (`reconcile`), taking the exchange's amount, with an event, when
it was moved outside the bot (a deposit, a purchase by hand).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from sqlalchemy import select

from .domain import FillReport
from .errors import ExchangeError
from .ledger import store
from .ledger.models import Balance

log = logging.getLogger("trader.feebalance")

# the exchange rounds commissions to 8 decimals; a float sum of them may differ in the last bits
TOLERANCE = 1e-9


def third_currency_rows(session, book: str, base: str, quote: str) -> list[Balance]:
    return [b for b in session.scalars(select(Balance).where(Balance.book == book).order_by(Balance.currency))
            if b.currency not in (base, quote)]


def seed(session, book: str, fills: Iterable[FillReport], base: str, quote: str,
         holding: Callable[[str], float]) -> None:
    """Before booking `fills` (one order's): a third currency with no balance row yet starts
    at what the exchange holds of it now plus the fees of these fills not booked yet, which
    the exchange has already taken and `record_fill` is about to take off."""
    owed: dict[str, float] = {}
    for fill in fills:
        if fill.fee and fill.fee_currency not in (base, quote) and not store.has_fill(session, book, fill.trade_id):
            owed[fill.fee_currency] = owed.get(fill.fee_currency, 0.0) + fill.fee
    for currency, fees in owed.items():
        if session.get(Balance, (book, currency)) is not None:
            continue
        try:
            held = holding(currency)
        except ExchangeError as exc:  # booked from 0 (what the book spent); the next start takes the exchange's
            log.warning("cannot read the %s balance to start the ledger's from: %s", currency, exc)
            continue
        session.add(Balance(book=book, currency=currency, free=held + fees, used=0.0, total=held + fees))
        session.flush()
        log.info("the ledger keeps the %s balance the fees are paid from: %.8f before this order's fees",
                 currency, held + fees, extra={"event": "fee_balance_started"})


def reconcile(session, book: str, base: str, quote: str, holding: Callable[[str], float]) -> list[str]:
    """At start, once no order of the book is open or in doubt (so every fee the exchange took
    is booked, and none is taken while we look): each third-currency balance against the
    exchange's. A difference was moved outside the bot: the ledger takes the exchange's amount
    and says so (an event). Returns the currencies adjusted."""
    rows = third_currency_rows(session, book, base, quote)
    if not rows or store.unresolved_orders(session, book):
        return []
    adjusted = []
    for row in rows:
        held = holding(row.currency)
        if abs(held - row.total) <= TOLERANCE:
            continue
        store.record_event(session, "fee_balance_adjusted",
                           f"{row.currency}: the ledger held {row.total:.8f}, the exchange {held:.8f} "
                           f"(moved outside the bot): the exchange's amount is taken", book,
                           {"currency": row.currency, "ledger": row.total, "exchange": held})
        log.warning("%s balance: ledger %.8f, exchange %.8f: taking the exchange's", row.currency, row.total, held,
                    extra={"event": "fee_balance_adjusted"})
        row.free, row.used, row.total = held, 0.0, held
        adjusted.append(row.currency)
    return adjusted

"""Fills in the event log: one `fill` event per fill of a book, so the dashboard's stream,
Telegram and anything reading events see trades as they happen.

The fill rows are the ledger's truth; their events are written after each tick (the engine's
transactions stay as they are). Each event names its fill id, so a daemon restarted after a
crash between the two announces the fills it missed, and none twice.
"""

from __future__ import annotations

from sqlalchemy import func, select

from .ledger import store
from .ledger.models import Event, Fill


def last_announced(session, book: str) -> int:
    """The id of the last fill of `book` with an event; before the first: the newest fill's
    (fills from before this feature are history, not news)."""
    event = session.scalars(select(Event).where(Event.kind == "fill", Event.book == book)
                            .order_by(Event.id.desc())).first()
    if event is not None and isinstance(event.data, dict) and isinstance(event.data.get("fill_id"), int):
        return event.data["fill_id"]
    return int(session.scalar(select(func.max(Fill.id)).where(Fill.book == book)) or 0)


def announce(factory, book: str, after: int) -> int:
    """Record a `fill` event for each fill of `book` after id `after`; the last id announced."""
    with factory.begin() as s:
        for f in s.scalars(select(Fill).where(Fill.book == book, Fill.id > after).order_by(Fill.id)):
            side, reason = f.side.value, f.reason.value  # the ledger reads them back as enums
            store.record_event(s, "fill", f"{side} {f.amount:.8g} at {f.price:,.2f} ({reason}), fee {f.fee:.6g} "
                               f"{f.fee_currency}", book,
                               {"fill_id": f.id, "side": side, "amount": f.amount, "price": f.price, "fee": f.fee,
                                "fee_currency": f.fee_currency, "reason": reason, "time": f.time.isoformat()})
            after = f.id
    return after

"""Which protection guards the position, as `trader status`, `/status` and the dashboard
show it: the fields (`describe`) and the one sentence every view prints (`summary`), made
here once so the views cannot disagree."""

from __future__ import annotations

from sqlalchemy import select

from .domain import OrderStatus, OrderType
from .ledger.models import Order
from .protection import WATCH_SECONDS, InForce, _open, in_force


def describe(session, book: str, qty: float, entry: float, risk: dict, mode: str | None = "live") -> dict:
    """What guards the stop-loss (and the take-profit) level, at which price, under which
    order; `mode` is the daemon's (the price watch between candles runs only live)."""
    stop_loss, take_profit = risk.get("stop_loss"), risk.get("take_profit")
    kind = in_force(session, book, qty, stop_loss)
    stop = _open(session, book)
    take = _open(session, book, OrderType.TAKE_PROFIT)
    found = {"in_force": kind.value, "stop_price": None, "order": None, "take_profit": None,
             "take_profit_price": None, "take_profit_order": None,
             "watch_seconds": WATCH_SECONDS if kind == InForce.CANDLE_CLOSE and mode == "live" else None,
             "stop_refused": False}
    if stop is not None:
        found.update(stop_price=stop.price, order=stop.client_order_id)
    elif kind == InForce.CANDLE_CLOSE:
        found["stop_price"] = entry * (1.0 - stop_loss)
        found["stop_refused"] = _last_stop_refused(session, book)
    if take is not None:
        found.update(take_profit="exchange", take_profit_price=take.price, take_profit_order=take.client_order_id)
    elif take_profit and qty > 0.0:
        found.update(take_profit="candle_close", take_profit_price=entry * (1.0 + take_profit))
    found["summary"] = summary(found, qty)
    return found


def _last_stop_refused(session, book: str) -> bool:
    """The book's latest stop order was refused by the exchange (it is tried again next tick)."""
    last = session.scalars(select(Order.status).where(Order.book == book, Order.type == OrderType.STOP_MARKET)
                           .order_by(Order.id.desc()).limit(1)).first()
    return last == OrderStatus.REJECTED


def _price(x: float) -> str:
    return f"{x:,.2f}" if x >= 1.0 else f"{x:.6g}"  # a coin under 1 keeps its digits


def summary(found: dict, qty: float) -> str:
    """One sentence: what guards the position and how soon it acts."""
    kind = found["in_force"]
    if kind == InForce.EXCHANGE_OCO:
        return (f"stop {_price(found['stop_price'])} and take-profit {_price(found['take_profit_price'])} rest on "
                f"the exchange as one OCO list (orders {found['order']}, {found['take_profit_order']})")
    take = (f"take-profit {_price(found['take_profit_price'])} checked at each candle close"
            if found["take_profit"] == "candle_close" else "")
    if kind == InForce.EXCHANGE_STOP:
        head = f"stop {_price(found['stop_price'])} rests on the exchange (order {found['order']})"
    elif kind == InForce.CANDLE_CLOSE:
        why = "the exchange refused the stop order (tried again next tick)" if found["stop_refused"] \
            else "no stop order rests on the exchange"
        head = (f"stop {_price(found['stop_price'])} watched by the daemon: the price every "
                f"{found['watch_seconds']} s and each candle's range; {why}" if found["watch_seconds"]
                else f"stop {_price(found['stop_price'])} checked at each candle close (paper)")
    elif qty <= 0.0:
        return "none: flat"
    else:
        head = "none: no stop-loss configured"
    return f"{head}; {take}" if take else head

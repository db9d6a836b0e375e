"""Reads and writes of the ledger. Every function takes the caller's Session; the caller
owns the transaction (`with factory.begin() as session:`), so each logical write is one
transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..domain import UNRESOLVED, FillReport, OrderStatus, Side, TradingState, add_to_position, reduce_position
from . import hot
from .models import (
    Approval,
    Balance,
    DaemonState,
    EquityPoint,
    Event,
    Fill,
    Order,
    Position,
    StrategyVersion,
    utcnow,
)


def ensure_version(session: Session, config, yaml_text: str | None = None) -> StrategyVersion:
    """The ledger row of this strategy version, created on first sight."""
    row = session.get(StrategyVersion, config.version)
    if row is None:
        row = StrategyVersion(
            version=config.version, name=config.name, strategy=config.strategy,
            settings=config.to_dict(), yaml_text=scrub(yaml_text),  # a key pasted in a comment
        )
        session.add(row)
        session.flush()
    return row


def book_rows(session: Session, book: str, symbol: str, quote: str, base: str,
              starting_cash: float, mode: str) -> tuple[DaemonState, Position, Balance, Balance]:
    """The book's state, position and balances, created on first use (paper starts with
    `starting_cash` of the quote currency)."""
    state = session.get(DaemonState, book)
    if state is None:
        state = DaemonState(book=book, state=TradingState.RUNNING, mode=mode, peak_equity=0.0)
        session.add(state)
    position = session.get(Position, book)
    if position is None:
        position = Position(book=book, symbol=symbol, qty=0.0, entry_price=0.0,
                            acted_target=0.0, trade_cash=0.0)
        session.add(position)
    cash = session.get(Balance, (book, quote))
    if cash is None:
        cash = Balance(book=book, currency=quote, free=starting_cash, used=0.0, total=starting_cash)
        session.add(cash)
    held = session.get(Balance, (book, base))
    if held is None:
        held = Balance(book=book, currency=base, free=0.0, used=0.0, total=0.0)
        session.add(held)
    session.flush()
    return state, position, cash, held


def add_intent(session: Session, *, client_order_id: str, book: str, mode: str, symbol: str,
               side: str, amount: float, price: float | None, reason: str,
               strategy_version: str, bar_time: datetime, type: str = "market") -> Order:
    order = Order(
        client_order_id=client_order_id, book=book, mode=mode, symbol=symbol, side=side,
        type=type, amount=amount, price=price, reason=reason, status=OrderStatus.INTENT, filled=0.0,
        strategy_version=strategy_version, bar_time=bar_time,
    )
    session.add(order)
    session.flush()
    return order


def order_by_client_id(session: Session, client_order_id: str) -> Order | None:
    # every decision looks its id up (a repeated tick must not place it twice) and almost
    # never finds it: a prepared look-up, the ORM's load only for a hit (half an order's
    # ORM time otherwise). The flush is the ORM query's autoflush.
    session.flush()
    found = hot.order_id(hot.connection_of(session), client_order_id)
    return None if found is None else session.get(Order, found)


def unresolved_orders(session: Session, book: str) -> list[Order]:
    """Orders whose outcome the ledger does not know yet: reconcile these on start."""
    return list(session.scalars(
        select(Order).where(Order.book == book, Order.status.in_(sorted(UNRESOLVED)))
        .order_by(Order.id)
    ))


def has_fill(session: Session, book: str, trade_id: str) -> bool:
    session.flush()  # as the ORM query's autoflush; then a prepared statement (every fill asks)
    return hot.fill_count(hot.connection_of(session), book, trade_id) > 0


def record_fill(session: Session, order: Order, fill: FillReport, *, base: str, quote: str) -> bool:
    """Book one fill: the fill row, the position and both balances move together, by the
    domain's rules (the backtest kernel's own).

    Returns False (and changes nothing) when this trade id is already in the ledger, so a
    fill seen twice by reconciliation is counted once.
    """
    if has_fill(session, order.book, fill.trade_id):
        return False
    position = session.get(Position, order.book)
    cash = session.get(Balance, (order.book, quote))
    held = session.get(Balance, (order.book, base))
    if fill.side == Side.BUY:
        if position.qty <= 0.0:
            position.trade_cash = cash.free
        # net of a fee taken from the base received: the ledger holds what the exchange holds
        qty, entry = add_to_position(position.qty, position.entry_price, fill.base_change(base), fill.price)
        position.qty, position.entry_price = float(qty), float(entry)
    else:
        position.qty = reduce_position(position.qty, -fill.base_change(base))
    position.strategy_version = order.strategy_version
    cash.free += fill.cash_change(quote)
    cash.total = cash.free + cash.used
    held.free = held.total = position.qty
    if fill.fee and fill.fee_currency not in (base, quote):
        _pay_third_currency_fee(session, order.book, fill.fee_currency, fill.fee)
    order.filled = (order.filled or 0.0) + fill.amount
    if fill.exchange_order_id and not order.exchange_order_id:
        order.exchange_order_id = fill.exchange_order_id
    session.add(Fill(
        order_id=order.id, book=order.book, client_order_id=order.client_order_id,
        trade_id=fill.trade_id, exchange_order_id=fill.exchange_order_id, side=fill.side,
        amount=fill.amount, price=fill.price, fee=fill.fee, fee_currency=fill.fee_currency,
        fee_quote=fill.fee_quote, reason=order.reason, time=fill.time, strategy_version=order.strategy_version,
    ))
    session.flush()
    return True


def _pay_third_currency_fee(session: Session, book: str, currency: str, fee: float) -> None:
    """A fee in a third currency (BNB) comes off the book's balance of it, as it does on the
    exchange (trader.feebalance seeds the row from the exchange's holding; unseeded, it
    starts at 0 and shows what the book spent)."""
    row = session.get(Balance, (book, currency))
    if row is None:
        row = Balance(book=book, currency=currency, free=0.0, used=0.0, total=0.0)
        session.add(row)
    row.free -= fee
    row.total = row.free + row.used


def record_equity(session: Session, *, book: str, time: datetime, equity: float, cash: float,
                  qty: float, price: float, target: float, strategy_version: str) -> None:
    # the ledger's hottest write, one row per tick, nothing reads it back as an object: a
    # prepared statement on the session's connection (`hot`), not the ORM's unit of work
    hot.insert_equity(hot.connection_of(session), book=book, time=time, equity=equity, cash=cash, position_qty=qty,
                      price=price, target=target, strategy_version=strategy_version)


def mark_tick(session: Session, state: DaemonState, **values: Any) -> None:
    """Write a tick's bookkeeping columns of the state row (peak equity, last bar, ...).

    A prepared UPDATE, and the loaded row takes the values as its database state: the ORM's
    unit of work costs several times the statement for this one row per tick. A rollback
    expires the row, so it never holds values the database does not."""
    hot.update_state(hot.connection_of(session), state.book, values)
    for key, value in values.items():
        set_committed_value(state, key, value)


_REGISTERED: set[str] = set()  # credentials the daemon was started with (its environment)


def register_secrets(values) -> None:
    """Credentials to mask in everything the ledger stores, besides os.environ's."""
    _REGISTERED.update(v for v in values if isinstance(v, str))


def scrub(value: Any) -> Any:
    """The value with every credential masked: event texts can quote user input (a key
    pasted into a YAML file), and the ledger must never hold a key."""
    from trader.logs import Scrubber, secret_env_values

    scrubber = Scrubber([*secret_env_values(), *_REGISTERED])
    return scrubber.tree(value) if scrubber else value


def record_event(session: Session, kind: str, message: str, book: str | None = None,
                 data: dict[str, Any] | None = None) -> Event:
    event = Event(kind=kind, message=scrub(message), book=book, data=scrub(data), time=utcnow())
    session.add(event)
    return event


def latest_approval(session: Session, kind: str) -> Approval | None:
    return session.scalars(
        select(Approval).where(Approval.kind == kind, Approval.revoked_at.is_(None))
        .order_by(Approval.id.desc())
    ).first()


def fills_of(session: Session, book: str) -> list[Fill]:
    return list(session.scalars(select(Fill).where(Fill.book == book).order_by(Fill.id)))


def equity_of(session: Session, book: str) -> list[EquityPoint]:
    return list(session.scalars(select(EquityPoint).where(EquityPoint.book == book).order_by(EquityPoint.time)))

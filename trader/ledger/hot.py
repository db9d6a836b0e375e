"""The statements every tick runs, prepared once per database dialect.

A tick writes one equity point and the book's bookkeeping columns, and reads the columns
other processes may change (`trader halt` / `resume`). Through SQLAlchemy's execution each
costs several times the database's own work (cache lookups, parameter processing, result
set-up: most of a replay tick). Here each statement is compiled once for the dialect, its
parameters converted by the very bind processors SQLAlchemy would use (so the stored values
are the same bits), and run on the DBAPI connection under the session's connection: the same
transaction; a database error is raised as SQLAlchemy would raise it (`DBAPIError`), so the
callers' handling of a full disk or a damaged file is unchanged.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from .models import DaemonState, EquityPoint, Fill, Order


class Prepared:
    """One statement, compiled per dialect for a fixed set of parameter names."""

    def __init__(self, statement, keys: tuple[str, ...] = ()):
        self.statement = statement
        self.keys = keys  # the columns given values (INSERT / UPDATE), in the caller's order
        self._compiled: dict[Any, tuple] = {}

    def execute(self, connection: Connection, params: dict[str, Any]):
        dialect = connection.dialect
        key = (type(dialect), dialect.paramstyle)  # not the instance: every ledger opened has one
        prepared = self._compiled.get(key)
        if prepared is None:
            prepared = self._compiled[key] = self._compile(dialect)
        sql, names, positional, processors, defaults = prepared
        if defaults:
            params = {**params, **{name: make(None) for name, make in defaults.items()}}
        values = [processors[k](params[k]) if k in processors else params[k] for k in names]
        args = tuple(values) if positional else dict(zip(names, values))
        cursor = connection.connection.driver_connection.cursor()
        try:
            cursor.execute(sql, args)
            return cursor.fetchone() if cursor.description else None
        except dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(sql, args, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc
        finally:
            cursor.close()

    def _compile(self, dialect):
        compiled = self.statement.compile(dialect=dialect, column_keys=list(self.keys) or None)
        names = tuple(compiled.positiontup) if compiled.positional else tuple(compiled.binds)
        processors, defaults = {}, {}
        for name, bind in compiled.binds.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)  # as Core would
            if process is not None:
                processors[name] = process
        # columns the statement sets by themselves (an `onupdate` time stamp), as Core would
        table = getattr(self.statement, "table", None)
        for name in names:
            column = table.c.get(name) if table is not None and name not in self.keys else None
            default = column is not None and (column.onupdate if self.statement.is_update else column.default)
            if default is not None and default is not False and getattr(default, "is_callable", False):
                defaults[name] = default.arg
        return str(compiled), names, compiled.positional, processors, defaults


_EQUITY_KEYS = ("book", "time", "equity", "cash", "position_qty", "price", "target", "strategy_version")
_INSERT_EQUITY = Prepared(insert(EquityPoint.__table__), _EQUITY_KEYS)
_TICK_UPDATES: dict[tuple[str, ...], Prepared] = {}
_ORDER_ID = Prepared(select(Order.id).where(Order.client_order_id == bindparam("cid")))
_FILLS = Prepared(select(func.count()).select_from(Fill)
                  .where(Fill.book == bindparam("book"), Fill.trade_id == bindparam("trade_id")))
_SEEN = Prepared(select(DaemonState.state, DaemonState.reason, DaemonState.peak_equity)
                 .where(DaemonState.book == bindparam("book")))


def connection_of(session) -> Connection:
    """The connection a tick's statements run on. A replay's sessions are bound to its batch's
    connection (`GroupCommit`), whose transaction they join and whose commits only flush:
    there the statements run on that connection directly, so a tick that changes no ORM row
    begins no session transaction and needs no session commit (about 20 us a tick)."""
    bind = session.bind
    return bind if isinstance(bind, Connection) else session.connection()


def end_tick(session) -> None:
    """Commit the tick's session transaction, if it began one (changing a held row does), and
    any change pending outside one."""
    if session.in_transaction() or session.new or session.dirty or session.deleted:
        session.commit()


def abort_tick(session) -> None:
    """Roll the tick back as the session's rollback would, also where only `connection_of`'s
    statements ran: in a replay's batch that is the batch's transaction, which the caller redoes."""
    began = session.in_transaction()
    session.rollback()
    bind = session.bind
    if not began and isinstance(bind, Connection) and bind.in_transaction():
        bind.rollback()


def insert_equity(connection: Connection, **row: Any) -> None:
    _INSERT_EQUITY.execute(connection, row)


def update_state(connection: Connection, book: str, values: dict[str, Any]) -> None:
    keys = tuple(values)
    prepared = _TICK_UPDATES.get(keys)
    if prepared is None:
        table = DaemonState.__table__
        prepared = _TICK_UPDATES[keys] = Prepared(update(table).where(table.c.book == bindparam("book_")), keys)
    prepared.execute(connection, {"book_": book, **values})


def state_columns(connection: Connection, book: str) -> tuple[str, str | None, float]:
    """(state, reason, peak equity) as stored: what `trader halt` / `resume` write."""
    return tuple(_SEEN.execute(connection, {"book": book}))


def order_id(connection: Connection, client_order_id: str) -> int | None:
    """The ledger id of the order with this client id (every decision looks its own up)."""
    row = _ORDER_ID.execute(connection, {"cid": client_order_id})
    return None if row is None else row[0]


def fill_count(connection: Connection, book: str, trade_id: str) -> int:
    return _FILLS.execute(connection, {"book": book, "trade_id": trade_id})[0]

"""The ledger's tables. The database is the source of truth: every order intent, fill,
position, balance, equity point, event and approval is a row here, and every order, fill
and equity point carries the strategy version that produced it.

Money is stored as IEEE doubles (REAL on SQLite, double precision on PostgreSQL), which
round-trip the backtester's floats bit for bit; amounts sent to an exchange are rounded to
the market's precision before they are recorded.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ..domain import OrderReason, OrderStatus, Side, TradingState

MAIN_BOOK = "main"


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite has no time zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger; expected UTC-aware")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Vocabulary(TypeDecorator):
    """A domain enum stored as its plain text value (the column stays a VARCHAR, so the
    schema and its migrations are unchanged), read back as the enum member."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type, length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else self.enum(value).value  # an unknown word fails here, not later

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else self.enum(value)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


Money = Float(precision=53)


class Base(DeclarativeBase):
    pass


class StrategyVersion(Base):
    __tablename__ = "strategy_versions"

    version: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    strategy: Mapped[str] = mapped_column(String(40))
    settings: Mapped[dict] = mapped_column(JSON)  # the validated settings, canonical
    yaml_text: Mapped[Optional[str]] = mapped_column(Text)  # the file as the user wrote it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Order(Base):
    """An order, from the intent (written before the exchange is called) to its outcome
    (`OrderStatus` says which outcomes there are)."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_order_id: Mapped[str] = mapped_column(String(36), unique=True)
    book: Mapped[str] = mapped_column(String(40), default=MAIN_BOOK)
    mode: Mapped[str] = mapped_column(String(8))  # paper | live
    symbol: Mapped[str] = mapped_column(String(40))
    side: Mapped[Side] = mapped_column(Vocabulary(Side, 4))
    type: Mapped[str] = mapped_column(String(12), default="market")
    amount: Mapped[float] = mapped_column(Money)
    price: Mapped[Optional[float]] = mapped_column(Money)  # the modeled price when decided
    reason: Mapped[OrderReason] = mapped_column(Vocabulary(OrderReason, 16))
    status: Mapped[OrderStatus] = mapped_column(Vocabulary(OrderStatus, 12), default=OrderStatus.INTENT)
    filled: Mapped[float] = mapped_column(Money, default=0.0)
    exchange_order_id: Mapped[Optional[str]] = mapped_column(String(64))
    error: Mapped[Optional[str]] = mapped_column(Text)
    strategy_version: Mapped[str] = mapped_column(ForeignKey("strategy_versions.version"))
    bar_time: Mapped[datetime] = mapped_column(UTCDateTime)  # the bar whose close decided it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_orders_book_status", "book", "status"),)


class Fill(Base):
    __tablename__ = "fills"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    book: Mapped[str] = mapped_column(String(40), default=MAIN_BOOK)
    client_order_id: Mapped[str] = mapped_column(String(36))
    trade_id: Mapped[str] = mapped_column(String(64))  # the exchange's trade id (paper: derived)
    exchange_order_id: Mapped[Optional[str]] = mapped_column(String(64))
    side: Mapped[Side] = mapped_column(Vocabulary(Side, 4))
    amount: Mapped[float] = mapped_column(Money)
    price: Mapped[float] = mapped_column(Money)
    fee: Mapped[float] = mapped_column(Money)
    fee_currency: Mapped[str] = mapped_column(String(16))
    # a fee in a third currency (BNB) valued in the quote currency when booked; else None
    fee_quote: Mapped[Optional[float]] = mapped_column(Money, nullable=True)
    reason: Mapped[OrderReason] = mapped_column(Vocabulary(OrderReason, 16))
    time: Mapped[datetime] = mapped_column(UTCDateTime)
    strategy_version: Mapped[str] = mapped_column(ForeignKey("strategy_versions.version"))

    # a fill is recorded exactly once, however often reconciliation sees it
    __table_args__ = (UniqueConstraint("book", "trade_id", name="uq_fills_book_trade"),)


class Position(Base):
    """The book's open position and the engine's memory of what it last acted on."""

    __tablename__ = "positions"

    book: Mapped[str] = mapped_column(String(40), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(40))
    qty: Mapped[float] = mapped_column(Money, default=0.0)
    entry_price: Mapped[float] = mapped_column(Money, default=0.0)  # average fill price
    acted_target: Mapped[float] = mapped_column(Money, default=0.0)
    trade_cash: Mapped[float] = mapped_column(Money, default=0.0)  # cash before this trade began
    strategy_version: Mapped[Optional[str]] = mapped_column(ForeignKey("strategy_versions.version"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Balance(Base):
    __tablename__ = "balances"

    book: Mapped[str] = mapped_column(String(40), primary_key=True)
    currency: Mapped[str] = mapped_column(String(16), primary_key=True)
    free: Mapped[float] = mapped_column(Money, default=0.0)
    used: Mapped[float] = mapped_column(Money, default=0.0)
    total: Mapped[float] = mapped_column(Money, default=0.0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class EquityPoint(Base):
    __tablename__ = "equity_points"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    book: Mapped[str] = mapped_column(String(40), default=MAIN_BOOK)
    time: Mapped[datetime] = mapped_column(UTCDateTime)  # open time of the bar just closed
    equity: Mapped[float] = mapped_column(Money)
    cash: Mapped[float] = mapped_column(Money)
    position_qty: Mapped[float] = mapped_column(Money)
    price: Mapped[float] = mapped_column(Money)  # the bar's close
    target: Mapped[float] = mapped_column(Money)  # the exposure the strategy wanted
    strategy_version: Mapped[str] = mapped_column(ForeignKey("strategy_versions.version"))

    __table_args__ = (UniqueConstraint("book", "time", name="uq_equity_book_time"),)


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    book: Mapped[Optional[str]] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(32))  # started, halted, config_changed, error, ...
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[Optional[dict]] = mapped_column(JSON)

    __table_args__ = (Index("ix_events_kind_time", "kind", "time"),)


class Approval(Base):
    """The user's explicit consent, bound to one exact strategy version."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # live | hermes_apply
    strategy_version: Mapped[Optional[str]] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    detail: Mapped[Optional[dict]] = mapped_column(JSON)
    revoked_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)


class DaemonState(Base):
    """One row per book: running or halted, and what the last tick did."""

    __tablename__ = "daemon_state"

    book: Mapped[str] = mapped_column(String(40), primary_key=True)
    state: Mapped[TradingState] = mapped_column(Vocabulary(TradingState, 12), default=TradingState.RUNNING)
    reason: Mapped[Optional[str]] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(8), default="paper")
    strategy_version: Mapped[Optional[str]] = mapped_column(String(16))
    peak_equity: Mapped[float] = mapped_column(Money, default=0.0)
    last_tick_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    last_bar_time: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    last_error: Mapped[Optional[str]] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Experiment(Base):
    """A challenger (the baseline with one variable changed) trading in a shadow paper book
    beside a control book (the baseline, also on paper), until its claim is decided."""

    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    book: Mapped[str] = mapped_column(String(40))  # the shadow book it trades in
    baseline_version: Mapped[str] = mapped_column(String(16))
    challenger_version: Mapped[str] = mapped_column(ForeignKey("strategy_versions.version"))
    variable: Mapped[str] = mapped_column(String(40))
    baseline_value: Mapped[Optional[float]] = mapped_column(Money)
    value: Mapped[float] = mapped_column(Money)
    # running | promoted | rejected (clearly worse) | expired (inconclusive) | stopped (baseline changed)
    status: Mapped[str] = mapped_column(String(12), default="running")
    variants_tried: Mapped[int] = mapped_column(Integer, default=1)
    cycles: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    evidence: Mapped[Optional[dict]] = mapped_column(JSON)
    rationale: Mapped[Optional[str]] = mapped_column(Text)
    metric: Mapped[Optional[str]] = mapped_column(String(20))  # the goal metric it claims to improve
    statistic: Mapped[Optional[str]] = mapped_column(String(32))  # the paired statistic that tests it
    control_book: Mapped[Optional[str]] = mapped_column(String(40))  # the baseline's paper book
    alpha: Mapped[Optional[float]] = mapped_column(Money)  # its share of the yearly error budget
    prior: Mapped[Optional[dict]] = mapped_column(JSON)  # held-out walk-forward returns its test starts with

    __table_args__ = (Index("ix_experiments_status", "status"),)


class Review(Base):
    """One Hermes cycle: what it saw, decided and proposed, and its report."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    mode: Mapped[str] = mapped_column(String(10))  # read_only | apply
    strategy_version: Mapped[str] = mapped_column(String(16))
    verdict: Mapped[str] = mapped_column(String(12))
    weakest: Mapped[Optional[str]] = mapped_column(String(40))
    decision: Mapped[str] = mapped_column(String(12))
    result: Mapped[dict] = mapped_column(JSON)  # the whole CycleResult
    report_markdown: Mapped[Optional[str]] = mapped_column(Text)
    report_path: Mapped[Optional[str]] = mapped_column(Text)

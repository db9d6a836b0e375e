"""The ledger itself: migrations that match the models, WAL mode, data kept across opens,
fills booked once, and the status read from it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from trader.domain import FillReport, Side
from trader.ledger import database_url, open_ledger, sessions, store
from trader.ledger.models import Base, DaemonState, Order
from trader.status import health

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def engine(database_url):
    engine = open_ledger(database_url)
    yield engine
    engine.dispose()


def test_the_migrations_build_exactly_the_models(engine):
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], "the models changed without a migration: add one under trader/ledger/migrations"


def test_sqlite_runs_in_wal_mode_with_foreign_keys(engine):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite pragmas")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_reopening_and_upgrading_keeps_the_data(database_url, config):
    url = database_url
    with sessions(open_ledger(url, revision="0001")).begin() as s:
        store.ensure_version(s, config, "yaml text")
        store.record_event(s, "started", "first run")
    with sessions(open_ledger(url)).begin() as s:  # upgrade 0001 -> head keeps the rows
        assert s.get(store.StrategyVersion, config.version).yaml_text == "yaml text"
        assert s.query(store.Event).one().message == "first run"


def test_a_fill_is_booked_once(engine, config):
    factory = sessions(engine)
    with factory.begin() as s:
        store.ensure_version(s, config)
        store.book_rows(s, "main", "BTC/USD", "USD", "BTC", 1000.0, "paper")
        order = store.add_intent(s, client_order_id="c1", book="main", mode="paper", symbol="BTC/USD",
                                 side="buy", amount=0.1, price=100.0, reason="signal",
                                 strategy_version=config.version, bar_time=T0)
        fill = FillReport("t1", Side.BUY, 0.1, 100.0, 0.01, "USD", T0)
        assert store.record_fill(s, order, fill, base="BTC", quote="USD")
        assert not store.record_fill(s, order, fill, base="BTC", quote="USD")
    with factory() as s:
        position = s.get(store.Position, "main")
        cash = s.get(store.Balance, ("main", "USD"))
        assert position.qty == 0.1 and position.entry_price == 100.0
        assert cash.free == pytest.approx(989.99)
        assert len(store.fills_of(s, "main")) == 1


def test_a_client_order_id_is_unique(engine, config):
    from sqlalchemy.exc import IntegrityError

    factory = sessions(engine)
    with pytest.raises(IntegrityError):
        with factory.begin() as s:
            store.ensure_version(s, config)
            for _ in range(2):
                s.add(Order(client_order_id="same", book="main", mode="paper", symbol="BTC/USD", side="buy",
                            amount=1.0, reason="signal", strategy_version=config.version, bar_time=T0))
                s.flush()


def test_naive_datetimes_are_refused(engine, config):
    factory = sessions(engine)
    with pytest.raises(Exception, match="naive datetime"):
        with factory.begin() as s:
            store.ensure_version(s, config)
            store.record_event(s, "x", "y")
            s.add(DaemonState(book="b", state="running", mode="paper", last_tick_at=datetime(2024, 1, 1)))
            s.flush()


def test_database_url_from_the_environment(tmp_path):
    assert database_url({"TRADER_DATA_DIR": str(tmp_path)}) == f"sqlite:///{tmp_path / 'trader.db'}"
    assert database_url({"DATABASE_URL": "postgres://u:p@h:5432/db"}) == "postgresql+psycopg://u:p@h:5432/db"
    assert database_url({"DATABASE_URL": "postgresql://u:p@h/db"}) == "postgresql+psycopg://u:p@h/db"
    assert database_url({"DATABASE_URL": "sqlite:////x/y.db"}) == "sqlite:////x/y.db"


def test_health_is_stale_after_two_candles_and_503_when_halted(engine):
    factory = sessions(engine)
    with factory.begin() as s:
        s.add(DaemonState(book="main", state="running", mode="paper", last_tick_at=T0))
    with factory() as s:
        assert health(s, "main", 3600, now=T0 + timedelta(minutes=30)) == (True, "last tick 1800 s ago")
        ok, reason = health(s, "main", 3600, now=T0 + timedelta(hours=3))
        assert not ok and "last tick 10800 s ago" in reason
    with factory.begin() as s:
        s.get(DaemonState, "main").state = "halted"
        s.get(DaemonState, "main").reason = "drawdown"
    with factory() as s:
        assert health(s, "main", 3600, now=T0) == (False, "halted: drawdown")


def test_a_second_daemon_on_the_same_book_is_refused(database_url):
    from trader.errors import InputError
    from trader.ledger.lock import acquire

    first, second = open_ledger(database_url), open_ledger(database_url)
    held = acquire(first, "main")
    with pytest.raises(InputError, match="another daemon is already trading book 'main'"):
        acquire(second, "main")
    other_book = acquire(second, "shadow-x")  # a different book is a different lock
    held.release()
    again = acquire(second, "main")  # free once the first let go
    again.release()
    other_book.release()
    first.dispose()
    second.dispose()


def test_an_unwritable_data_directory_is_a_clear_error(tmp_path):
    from trader.errors import InputError

    # a data directory that cannot be created (its parent is a file): unwritable even for root
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(InputError, match="data directory .*not-a-folder/sub is not writable .*TRADER_DATA_DIR"):
        open_ledger(f"sqlite:///{blocker / 'sub' / 'trader.db'}")


def test_each_ledger_has_its_own_reports_folder(tmp_path):
    """Two ledgers in one data directory both have a review 1: their reports must not share
    a name. The data directory's own ledger keeps the documented data/reports/."""
    from sqlalchemy import create_engine

    from trader.ledger.db import reports_dir

    def folder(url, environ=None):
        engine = create_engine(url)
        try:
            return reports_dir(tmp_path, engine, environ or {})
        finally:
            engine.dispose()

    own = folder(f"sqlite:///{tmp_path / 'trader.db'}")
    pg = "postgresql+psycopg://u:pw-Secret1@db.example/trader"
    assert folder(pg, {"DATABASE_URL": "postgres://u:pw-Secret1@db.example/trader"}) == own  # the daemon's ledger
    others = [folder(f"sqlite:///{tmp_path / 'replay.db'}"), folder(f"sqlite:///{tmp_path / 'sub' / 'trader.db'}"),
              folder("postgresql+psycopg://u:pw-Secret1@db.example/trader"),
              folder("postgresql+psycopg://u:pw-Secret1@db.example/other")]
    assert own == tmp_path / "reports"
    assert len({own, *others}) == 5 and all(f.parent == own for f in others)
    assert others[0].name.startswith("replay-") and others[3].name.startswith("other-")
    assert "Secret1" not in str(others[2])
    assert folder(f"sqlite:///{tmp_path / 'replay.db'}") == others[0]  # stable from one run to the next


def test_a_fee_in_a_third_currency_is_taken_from_its_balance(engine, config):
    """BNB fees: seeded from the exchange's holding plus the fees about to be booked (the
    exchange took them already), then each fill's fee comes off once, on SQLite and PostgreSQL."""
    from trader import feebalance

    factory = sessions(engine)
    fills = [FillReport(f"b{i}", Side.BUY, 0.05, 100.0, 0.00001234, "BNB", T0, fee_quote=0.0037) for i in (1, 2)]
    with factory.begin() as s:
        store.ensure_version(s, config)
        store.book_rows(s, "main", "BTC/USD", "USD", "BTC", 1000.0, "live")
        order = store.add_intent(s, client_order_id="c2", book="main", mode="live", symbol="BTC/USD",
                                 side="buy", amount=0.1, price=100.0, reason="signal",
                                 strategy_version=config.version, bar_time=T0)
        feebalance.seed(s, "main", fills, "BTC", "USD", lambda currency: 4.99997532)
        for fill in fills + fills:  # seen twice: booked once
            store.record_fill(s, order, fill, base="BTC", quote="USD")
    with factory() as s:
        assert s.get(store.Balance, ("main", "BNB")).total == pytest.approx(4.99997532, abs=1e-12)
        assert s.get(store.Balance, ("main", "USD")).free == pytest.approx(990.0)  # the fee is not cash

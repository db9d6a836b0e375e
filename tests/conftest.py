"""Shared fixtures: small, real data committed with the tests (see tests/data/README.md)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
BTC_1H = DATA / "btcusd-1h.csv"
STRATEGY_YAML = DATA / "strategy.yaml"  # the example file as the golden numbers were pinned (config/ may move on)
SHIPPED_YAML = ROOT / "config" / "strategy.yaml"


@pytest.fixture(scope="session")
def btc() -> pd.DataFrame:
    """3,000 real hourly BTC/USD candles (2017-07-01 onwards)."""
    frame = pd.read_csv(BTC_1H, index_col="timestamp", parse_dates=True)
    frame.index = pd.DatetimeIndex(frame.index, tz="UTC") if frame.index.tz is None else frame.index
    return frame.astype("float64")


@pytest.fixture(scope="session")
def config():
    from trader.config import load_strategy_config

    return load_strategy_config(STRATEGY_YAML)


# -- databases: SQLite always; PostgreSQL whenever a server is reachable -------------------------

import os  # noqa: E402
import uuid  # noqa: E402

PG_URL = os.environ.get("TRADER_TEST_POSTGRES_URL")


def _pg_admin():
    import psycopg

    url = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh, empty ledger database URL on each backend (.ci/run starts PostgreSQL)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    if not PG_URL:
        pytest.skip("no PostgreSQL server: set TRADER_TEST_POSTGRES_URL (.ci/run starts one)")
    name = f"trader_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    with _pg_admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

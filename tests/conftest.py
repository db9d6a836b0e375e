"""Shared fixtures: small, real data committed with the tests (see tests/data/README.md)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
BTC_1H = DATA / "btcusd-1h.csv"
STRATEGY_YAML = ROOT / "config" / "strategy.yaml"


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

"""The exchange table kept in the package (so a strategy file validates without importing ccxt)
must be the installed ccxt's: its exchange ids and each one's candle sizes."""

from __future__ import annotations

import subprocess
import sys

import ccxt

from trader import exchange_ids
from trader.exchange_ids_data import CCXT_VERSION

REGENERATE = "regenerate it: python -m trader.exchange_ids > trader/exchange_ids_data.py"


def test_the_exchange_ids_are_ccxts():
    missing = sorted(set(ccxt.exchanges) - exchange_ids.EXCHANGES)
    extra = sorted(exchange_ids.EXCHANGES - set(ccxt.exchanges))
    assert not missing and not extra, (
        f"trader/exchange_ids_data.py (ccxt {CCXT_VERSION}) differs from ccxt {ccxt.__version__}: "
        f"missing {missing}, no longer in ccxt {extra}; {REGENERATE}")


def test_the_timeframes_are_ccxts():
    differ = {e: (exchange_ids.TIMEFRAMES[e], frames) for e, frames in exchange_ids.from_ccxt().items()
              if exchange_ids.TIMEFRAMES.get(e) != frames}
    assert not differ, f"timeframes differ from ccxt {ccxt.__version__} for {sorted(differ)}; {REGENERATE}"


def test_an_id_only_a_newer_ccxt_knows_is_looked_up_there(monkeypatch):
    monkeypatch.setattr(exchange_ids, "EXCHANGES", exchange_ids.EXCHANGES - {"kraken"})
    monkeypatch.setattr(exchange_ids, "TIMEFRAMES", {k: v for k, v in exchange_ids.TIMEFRAMES.items() if k != "kraken"})
    assert exchange_ids.is_exchange("kraken")
    assert "1h" in exchange_ids.timeframes("kraken")
    assert not exchange_ids.is_exchange("no-such-exchange")


def test_validating_a_strategy_file_does_not_import_ccxt(tmp_path):
    """`trader check` pays for what it uses: a fresh process validating the example file
    imports neither ccxt nor numba, pandas or matplotlib."""
    code = ("import sys; from trader.config import load_strategy_config; "
            "load_strategy_config('config/strategy.yaml'); "
            "print(sorted(m for m in ('ccxt', 'numba', 'pandas', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=exchange_ids.__file__.rsplit("/trader/", 1)[0])
    assert out.stdout.strip() == "[]"

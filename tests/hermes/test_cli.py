"""The `hermes` command as a user meets it: bad input and an unreachable exchange end in one
line that says what to do (exit 2), never a traceback."""

from __future__ import annotations

import pytest

from hermes.cli import main as hermes_main
from trader.errors import DataError

from ..conftest import ROOT, STRATEGY_YAML


def test_a_review_without_data_and_without_the_exchange_points_to_data_file(tmp_path, monkeypatch, capsys):
    import trader.download

    def unreachable(*_args, **_kwargs):
        raise DataError("coinbase: loading markets still failing after 6 attempts: NetworkError: coinbase GET ...")

    monkeypatch.setattr(trader.download, "download_ohlcv", unreachable)
    monkeypatch.setenv("TRADER_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    code = hermes_main(["review", "--config", str(STRATEGY_YAML), "--goals", str(ROOT / "config" / "goals.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "still failing after 6 attempts" in err and "`hermes review --data FILE` reviews from a candle file" in err

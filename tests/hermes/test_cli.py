"""The `hermes` command as a user meets it: bad input and an unreachable exchange end in one
line that says what to do (exit 2), never a traceback."""

from __future__ import annotations

from hermes.cli import main as hermes_main
from trader.errors import DataError

from ..conftest import BTC_1H, ROOT, STRATEGY_YAML


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


def test_a_review_of_a_window_without_equity_says_nothing_was_measured_and_unlocks_nothing(tmp_path, monkeypatch,
                                                                                           capsys):
    monkeypatch.setenv("TRADER_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "400")  # rich: the verdict line on one line
    files = ["--config", str(STRATEGY_YAML), "--goals", str(ROOT / "config" / "goals.yaml")]
    assert hermes_main(["review", *files, "--data", str(BTC_1H), "--now", "2017-10-15"]) == 0
    out = capsys.readouterr().out
    assert "weakest goal: n/a (nothing could be measured: the ledger has no equity points in the last 90 days" in out
    (report,) = (tmp_path / "reports").glob("*.md")
    text = report.read_text()
    assert "every measurable success goal is met" not in text
    assert "Nothing could be measured: the ledger has no equity points in the last 90 days" in text
    # such a review is not the read-only review whose report unlocks apply mode
    assert hermes_main(["approve", "--yes"]) == 2
    err = capsys.readouterr().err
    assert "refused until a read-only review has measured something: review #1 found no equity points" in err
    from hermes.cli import _ledger
    from trader.ledger.models import Approval

    with _ledger()() as s:
        assert s.query(Approval).filter_by(kind="hermes_apply").count() == 0

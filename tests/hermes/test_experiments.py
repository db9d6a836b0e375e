"""How long an experiment runs: a test that has not grown its evidence after 8 weeks gives its
slot back; one whose e-value has grown may run on to 26 weeks, since a weak real effect needs
months of bars; sparse candles get the 26 weeks in any case."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import insert

from hermes import experiments
from trader.config import load_strategy_config
from trader.ledger import open_ledger, sessions, store
from trader.ledger.models import EquityPoint, Experiment

from ..conftest import STRATEGY_YAML

T0 = datetime(2025, 1, 6, 6, tzinfo=timezone.utc)


def _equity(returns: np.ndarray) -> np.ndarray:
    return 10_000 * np.cumprod(np.r_[1.0, 1.0 + returns])


def judged(tmp_path, control: np.ndarray, challenger: np.ndarray, step: timedelta, alpha: float = 0.01):
    """Judge an experiment whose two books earned these per-bar returns since T0."""
    config = load_strategy_config(STRATEGY_YAML)
    other = config.with_value("fast", 10)
    factory = sessions(open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}"))
    with factory.begin() as s:
        store.ensure_version(s, config)
        store.ensure_version(s, other)
        s.flush()
        e = Experiment(book="shadow", control_book="control", baseline_version=config.version,
                       challenger_version=other.version, variable="fast", baseline_value=20.0, value=10.0,
                       status="running", started_at=T0, metric="sharpe", statistic="risk_adjusted_return",
                       alpha=alpha, prior={})
        s.add(e)
        s.flush()
        s.execute(insert(EquityPoint), [
            dict(book=book, time=T0 + i * step, equity=float(value), cash=float(value), position_qty=0.0, price=1.0,
                 target=0.0, strategy_version=config.version)
            for book, returns in (("shadow", challenger), ("control", control)) for i, value in enumerate(_equity(returns))])
        now = T0 + len(control) * step
        return experiments.judge(s, e, config, now), e.status


def test_no_evidence_after_eight_weeks_gives_the_slot_back(tmp_path):
    control = np.random.default_rng(1).normal(0.0, 0.005, 57 * 24)
    decision, status = judged(tmp_path, control, control.copy(), timedelta(hours=1))  # the same books: K stays 1
    assert decision.evidence["e_value"] == pytest.approx(1.0)
    assert decision.action == "expire" and status == "expired" and "57 days" in decision.reason


def test_growing_evidence_runs_on_until_26_weeks(tmp_path):
    rng = np.random.default_rng(2)
    for days, action in ((57, "continue"), (183, "expire")):
        control = rng.normal(0.0, 0.005, days * 24)
        challenger = control * 0.5 + rng.normal(0.0004, 0.0025, control.size)  # a small edge, not yet enough
        decision, _ = judged(tmp_path / str(days), control, challenger, timedelta(hours=1), alpha=1e-30)
        assert 1.0 < decision.evidence["e_value"] < 1e30  # the evidence grew, short of the bar
        assert decision.action == action, decision.reason
    assert "leans the claim's way" in judged(tmp_path / "again", control[:57 * 24], challenger[:57 * 24],
                                             timedelta(hours=1), alpha=1e-30)[0].reason


def test_daily_candles_get_26_weeks_to_collect_100_bars(tmp_path):
    control = np.random.default_rng(3).normal(0.0, 0.03, 60)
    decision, status = judged(tmp_path, control, control.copy(), timedelta(days=1))
    assert decision.action == "continue" and status == "running"
    assert "fewer than 100 forward bars" in decision.reason

"""The sequential test behind every promotion: valid under the null however often it is looked
at, powerful where the claim holds, and testing the claim the experiment made."""

from __future__ import annotations

import itertools
import math
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from hermes import budget, sequential
from hermes.sequential import claim_for, evidence, statistic, wealth
from trader.ledger import open_ledger, sessions
from trader.ledger.models import Experiment, Review, StrategyVersion

RUNS = 1000


def crossing_rate(draw, n: int, level: float = 0.05, runs: int = RUNS) -> float:
    """Share of runs whose wealth ever reaches 1/level (Ville: at most `level` under H0)."""
    return float(np.mean([wealth(draw(n)).max() >= 1 / level for _ in range(runs)]))


def band(p: float, runs: int = RUNS, z: float = 3.5) -> float:
    return p + z * math.sqrt(p * (1 - p) / runs)


@pytest.mark.parametrize("name, draw", [
    ("gaussian", lambda rng, n: rng.normal(0.0, 1.0, n)),
    ("heavy tails", lambda rng, n: rng.standard_t(3, n)),
    ("volatility clusters", lambda rng, n: rng.normal(0.0, 1.0, n) * np.exp(np.cumsum(rng.normal(0, 0.1, n)))),
    # two books on a martingale market that hold different positions on different days
    ("exposure differences", lambda rng, n: np.repeat(rng.integers(-1, 2, n // 24 + 1), 24)[:n]
     * rng.standard_t(3, n) * 0.007),
    ("a negative mean (fees)", lambda rng, n: rng.normal(-0.05, 1.0, n)),
])
def test_the_chance_of_ever_crossing_is_at_most_the_level_under_the_null(name, draw):
    rng = np.random.default_rng(7)
    rate = crossing_rate(lambda n: draw(rng, n), 1344)  # 8 weeks of hourly bars, watched at every bar
    assert rate <= band(0.05), (name, rate)


def test_a_real_edge_reaches_a_strict_level_and_a_bigger_one_sooner():
    rng = np.random.default_rng(1)
    hits = [wealth(rng.normal(0.2, 1.0, 1344)).max() >= 3120 for _ in range(200)]
    assert np.mean(hits) >= 0.95
    first = lambda mu: np.median([np.argmax(wealth(rng.normal(mu, 1.0, 4000)) >= 3120) for _ in range(50)])  # noqa: E731
    assert first(0.4) < first(0.2) / 2  # (0.2/0.4)^2 = 1/4 of the bars in theory; learning the bet costs some


def test_a_few_bars_cannot_reach_a_high_bar_however_good_they_look():
    # a week of daily candles: each bar at most multiplies the wealth by 1 + MAX_BET
    assert wealth(np.full(6, 5.0))[-1] < 20
    assert wealth(np.full(6, 5.0))[-1] <= (1 + sequential.MAX_BET) ** (6 - sequential.BURN)


def test_each_claim_is_tested_with_its_own_statistic():
    rng = np.random.default_rng(3)
    market = rng.normal(0.001, 0.01, 2000)  # a rising market, per-bar Sharpe 0.1
    # the challenger holds less: less return on rising bars, but more return per unit of risk
    challenger = 0.3 * market + 0.0004 + rng.normal(0, 0.0005, 2000)
    assert evidence(claim_for("monthly_return").statistic, challenger, market).e_value < 1  # it earns less
    assert evidence(claim_for("sharpe").statistic, challenger, market).e_value > 1e4  # a better Sharpe ratio
    breached = claim_for("max_drawdown", "stake_fraction", breach=True)  # a failure threshold is breached
    assert evidence(breached.statistic, challenger, market).e_value > 1e4  # smaller losses
    # the same book at half the stake: the same Sharpe ratio, so no evidence for a Sharpe claim
    half = evidence(claim_for("sharpe").statistic, 0.5 * market, market)
    assert half.e_value < 20 and half.e_value_worse < 20
    assert breached.effect == "mechanical" and claim_for("sharpe").effect == "predictive"
    # holding less on a market with no edge: a quick remedy when a failure threshold is breached;
    # otherwise no evidence, whether the stake is halved or a signal parameter merely happens to
    # be out of the market more often (gains shrink with the losses)
    walk = rng.standard_t(4, 3000) * 0.007
    out_more = walk * (rng.random(3000) < 0.6)
    assert breached.statistic == "downside_variance"
    assert evidence("downside_variance", 0.5 * walk, walk).e_value > 1e4
    for variable in ("stake_fraction", "stop_loss", "fast"):
        assert claim_for("max_drawdown", variable).statistic == "downside_asymmetry"
        assert claim_for("max_drawdown", variable).effect == "predictive"
    assert claim_for("max_drawdown", "fast", breach=True).statistic == "downside_asymmetry"
    assert evidence("downside_asymmetry", out_more, walk).e_value < 20
    assert evidence("downside_asymmetry", 0.5 * walk, walk).e_value < 20
    assert claim_for("win_rate").statistic == "return" and claim_for(None).metric == "sharpe"


def test_statistics_are_predictable_and_refuse_bad_input():
    c, b = np.array([0.01, -0.02, 0.03, 0.0]), np.array([0.0, -0.01, 0.01, 0.02])
    x = statistic("risk_adjusted_return", c, b)
    assert x[0] == 0.0  # no earlier bar, no scale: nothing is bet on the first bar
    changed = statistic("risk_adjusted_return", np.r_[c[:3], 9.0], np.r_[b[:3], 0.02])
    assert np.array_equal(changed[:3], x[:3])  # a later bar never changes an earlier value
    assert list(statistic("downside_variance", c, b)) == pytest.approx([0.0, 0.0001 - 0.0004, 0.0, 0.0])
    with pytest.raises(ValueError, match="equal length"):
        statistic("return", c, b[:3])
    with pytest.raises(ValueError, match="NaN"):
        statistic("return", np.r_[c[:3], np.nan], b)
    with pytest.raises(ValueError, match="unknown statistic"):
        statistic("luck", c, b)


T0 = datetime(2025, 1, 6, 6, tzinfo=timezone.utc)


@contextmanager
def reviewed_once(tmp_path):
    """A ledger transaction whose first (read-only) review was at T0: the budget's income starts there."""
    factory = sessions(open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}"))
    with factory.begin() as s:
        s.add(Review(time=T0, mode="read_only", strategy_version="v", verdict="not_yet", decision="none", result={}))
        s.flush()
        yield s


_BOOKS = itertools.count()


def _started(s, now, levels, e_value=0.0, status="expired"):
    for alpha in levels:
        s.add(Experiment(book=f"b{next(_BOOKS)}", baseline_version="v", challenger_version="v", variable="fast",
                         value=1.0, status=status, alpha=alpha, started_at=now, evidence={"e_value": e_value}))
    s.flush()


def test_the_yearly_budget_pays_the_same_level_to_the_hundredth_experiment(tmp_path):
    """E[false promotions in T weeks] <= 0.05 max(T, 26) / 52: the level depends on time, not on
    how many experiments came before (a lifetime budget would give the 100th 1/10,000 of the
    first's). Every experiment here ends with an e-value of 0, so nothing is refunded."""
    with reviewed_once(tmp_path) as s:
        s.add(StrategyVersion(version="v", name="n", strategy="ma_cross", settings={}))
        weekly = budget.ALPHA_PER_YEAR / 52
        levels = []
        for week in range(1, 105):  # two years, three experiments asked for every week
            now = T0 + timedelta(weeks=week)
            share = budget.levels(s, now, 3)
            _started(s, now, share)
            levels.append(share)
            earned, spent, _ = budget.available(s, now)
            assert spent <= earned + 1e-15 and earned == pytest.approx(weekly * max(week, budget.ADVANCE_WEEKS))
    # half a year's income at once: the lead candidate gets twice the others' share, within the cap
    half = budget.ALPHA_PER_YEAR / 2
    assert levels[0] == pytest.approx([half / 2, half / 4, half / 4])
    assert levels[0][0] == pytest.approx(budget.ALPHA_PER_YEAR * budget.MAX_SHARE)
    assert all(share == [] for share in levels[1:25])  # spent until the income catches up
    # then every week's income, in the same shares, for as long as Hermes runs
    assert levels[30] == pytest.approx([weekly / 2, weekly / 4, weekly / 4]) and levels[-1] == pytest.approx(levels[30])
    assert sum(map(sum, levels[:52])) <= budget.ALPHA_PER_YEAR + 1e-12
    assert sum(map(sum, levels[52:])) <= budget.ALPHA_PER_YEAR + 1e-12


def test_an_experiment_closed_without_a_promotion_gives_back_what_was_never_at_risk(tmp_path):
    """Refund alpha * min(K, 1) at the last look (optional stopping of the e-process): a level
    still running or promoted is spent in full; one expired with K = 0.4 costs 60 % of it."""
    with reviewed_once(tmp_path) as s:
        s.add(StrategyVersion(version="v", name="n", strategy="ma_cross", settings={}))
        s.flush()
        now = T0 + timedelta(weeks=1)
        _started(s, now, [0.004], status="running")
        _started(s, now, [0.004], status="promoted", e_value=500.0)
        _started(s, now, [0.004], status="expired", e_value=0.4)
        _started(s, now, [0.004], status="stopped", e_value=3.0)  # stopped when another was promoted
        _started(s, now, [0.004], status="rejected", e_value=0.0)
        earned, spent, free = budget.available(s, now)
        assert spent == pytest.approx(0.004 + 0.004 + 0.0024 + 0.0 + 0.004)
        assert free == pytest.approx(earned - spent)


def test_unspent_income_waits_for_later_experiments_within_a_cap(tmp_path):
    with reviewed_once(tmp_path) as s:
        s.add(StrategyVersion(version="v", name="n", strategy="ma_cross", settings={}))
        cap = budget.ALPHA_PER_YEAR * budget.MAX_SHARE
        assert budget.levels(s, T0 + timedelta(weeks=4), 1) == pytest.approx([cap])
        assert budget.levels(s, T0 + timedelta(weeks=52), 1) == pytest.approx([cap])
        # too little left for three: fewer experiments, each with a level that can still pass
        _started(s, T0, [budget.ALPHA_PER_YEAR / 2 - 2.5 * budget.MIN_LEVEL])
        fewer = budget.levels(s, T0 + timedelta(days=2), 3)
        assert len(fewer) == 1 and fewer[0] == pytest.approx(2.5 * budget.MIN_LEVEL)
        assert budget.levels(s, T0 + timedelta(days=2), 1) == pytest.approx(fewer)


def test_the_user_sets_the_yearly_rate_and_nonsense_is_refused(tmp_path):
    from pydantic import ValidationError

    from trader.goals import Goals

    with reviewed_once(tmp_path) as s:
        s.flush()
        later = T0 + timedelta(weeks=2)
        assert budget.levels(s, later, 2, per_year=0.2) == pytest.approx([4 * x for x in budget.levels(s, later, 2)])
    assert Goals.model_validate({"review": {"false_promotions_per_year": 0.2}}).review.false_promotions_per_year == 0.2
    assert Goals().review.false_promotions_per_year == budget.ALPHA_PER_YEAR
    for bad in (0, -0.1, 2):
        with pytest.raises(ValidationError):
            Goals.model_validate({"review": {"false_promotions_per_year": bad}})

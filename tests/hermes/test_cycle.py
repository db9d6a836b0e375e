"""Hermes cycles on a ledger filled by replaying real candles through the daemon's engine."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import pytest

from hermes import cycle as cycle_module
from hermes.cycle import CycleInputs, run_cycle
from hermes.stats import Decision
from trader.brokers import PaperBroker
from trader.config import load_strategy_config, parse_strategy_config
from trader.engine import Engine
from trader.feeds import ReplayFeed
from trader.goals import Goals
from trader.ledger import open_ledger, sessions, store
from trader.ledger.models import Approval, DaemonState, Experiment, Review, StrategyVersion

from ..conftest import ROOT, STRATEGY_YAML

LOOSE = Goals.model_validate({"failure": {"thresholds": {"max_drawdown": 0.5}, "monthly_return_floor": None},
                              "review": {"lookback_days": 60}})


class World:
    """A strategy file, a ledger, and the candles the daemon has seen so far."""

    def __init__(self, tmp_path, btc, url, goals=LOOSE):
        self.dir = tmp_path
        self.path = tmp_path / "strategy.yaml"
        shutil.copy(STRATEGY_YAML, self.path)
        self.btc, self.goals = btc, goals
        self.url = url
        self.factory = sessions(open_ledger(self.url))
        self.views = list(ReplayFeed(btc, 500).views())

    def drive(self, start, stop):
        """The daemon trading bars [start, stop): the baseline and every running challenger."""
        config = load_strategy_config(self.path)
        engines = [Engine(config=config, goals=None, sessions=self.factory, broker=PaperBroker("USD"))]
        with self.factory() as s:
            for exp in s.query(Experiment).filter_by(status="running"):
                settings = dict(s.get(StrategyVersion, exp.challenger_version).settings)
                engines.append(Engine(config=parse_strategy_config(settings, "<c>"), goals=None,
                                      sessions=self.factory, broker=PaperBroker("USD"), book=exp.book))
        for view in self.views[start:stop]:
            for engine in engines:
                engine.tick(view, now=view.next_time)

    def review(self, at):
        now = self.btc.index[at - 1].to_pydatetime()
        return run_cycle(self.factory, CycleInputs(config_path=self.path, goals=self.goals,
                                                   ohlcv=self.btc.iloc[:at], data_dir=self.dir, now=now))

    def approve(self, live=False):
        with self.factory.begin() as s:
            s.add(Approval(kind="hermes_apply", detail={"live": live}))


@pytest.fixture
def world(tmp_path, btc, database_url):
    return World(tmp_path, btc, database_url)


def test_the_first_cycle_only_observes_and_reports(world):
    world.drive(0, 1500)
    before = world.path.read_text()
    result = world.review(1500)
    assert result.mode == "read_only" and result.decision.action == "none"
    assert world.path.read_text() == before
    with world.factory() as s:
        assert s.query(Experiment).count() == 0
        review = s.query(Review).one()
    assert review.result["scorecard"]["verdict"] == result.scorecard.verdict
    assert review.report_markdown.startswith("# Hermes weekly review")
    md = world.dir / "reports" / result.report_path.split("/")[-1]
    assert md.exists() and md.with_suffix(".json").exists() and md.with_suffix(".png").exists()
    card = result.scorecard
    assert card.trades >= 10 and card.metrics["sharpe"] is not None
    assert card.slippage_realised == pytest.approx(card.slippage_modeled)  # paper fills slip as modeled
    assert {g.metric for g in card.goals if g.kind == "success"} == {"monthly_return", "sharpe", "max_drawdown"}


def test_apply_mode_runs_an_experiment_in_a_shadow_book(world):
    world.drive(0, 1500)
    world.review(1500)
    world.approve()
    world.drive(1500, 2300)
    started = world.review(2300)
    assert started.mode == "apply" and started.proposal is not None
    proposal = started.proposal
    config = load_strategy_config(world.path)
    bounds = config.tunable[proposal.variable]
    assert bounds.min <= proposal.value <= bounds.max and proposal.value != config.value_of(proposal.variable)
    assert proposal.candidates_tried > 20
    with world.factory() as s:
        exp = s.query(Experiment).one()
    assert exp.status == "running" and exp.variable == proposal.variable and exp.book.startswith("shadow-")
    world.drive(2300, 3000)
    judged = world.review(3000)
    assert judged.decision.experiment_id == exp.id
    assert judged.decision.action in ("continue", "reject", "promote")
    evidence = judged.decision.evidence
    assert evidence["n"] == 699 and 0 <= evidence["p_value"] <= 1
    # the first experiment's share of the 5% budget, split by Šidák over its 4 reviews
    assert evidence["experiments_so_far"] == 1
    share = 0.05 * 6 / math.pi ** 2
    assert evidence["family_alpha"] == pytest.approx(share)
    assert evidence["alpha_adjusted"] == pytest.approx(1 - (1 - share) ** (1 / 4))
    assert evidence["n_boot"] >= 20 / evidence["alpha_adjusted"]
    with world.factory() as s:
        assert len(store.equity_of(s, exp.book)) == 700


def test_a_promotion_rewrites_the_strategy_file_and_keeps_the_previous(world, monkeypatch):
    world.drive(0, 1500)
    world.review(1500)
    world.approve(live=True)
    world.drive(1500, 2300)
    before = load_strategy_config(world.path)
    with world.factory.begin() as s:
        s.add(Approval(kind="live", strategy_version=before.version))
    started = world.review(2300)
    world.drive(2300, 2700)
    monkeypatch.setattr(cycle_module.stats, "decide", lambda *a, **k: Decision(
        action="promote", reason="test: planted promotion", evidence={"n": 400, "p_value": 0.0001}))
    promoted = world.review(2700)
    assert promoted.decision.action == "promote" and promoted.decision.applied
    after = load_strategy_config(world.path)
    assert after.version == started.proposal.version != before.version
    assert after.value_of(started.proposal.variable) == pytest.approx(started.proposal.value)
    text = world.path.read_text()
    assert text.startswith("# Hermes ") and "promoted" in text.splitlines()[0]
    assert "# The strategy the daemon trades." in text  # the user's comments are kept
    assert (world.dir / "versions" / f"strategy-{before.version}.yaml").read_text() == STRATEGY_YAML.read_text()
    with world.factory() as s:
        live = store.latest_approval(s, "live")
        exp = s.get(Experiment, promoted.decision.experiment_id)
    assert live.strategy_version == after.version  # inherited: apply mode was approved with --live
    assert exp.status == "promoted"
    # the next challenger starts from the promoted version
    if promoted.proposal is not None:
        assert promoted.strategy_version == after.version


def test_a_failing_goal_halts_and_rolls_back_to_the_last_good_version(world, tmp_path):
    world.drive(0, 1500)
    world.review(1500)  # version A, not failing under the loose goals
    world.approve()
    good = load_strategy_config(world.path).version
    world.path.write_text(world.path.read_text().replace("fast: 20", "fast: 30"))
    world.drive(1500, 2000)
    world.goals = Goals.model_validate({"failure": {"thresholds": {"sharpe": 15.0}}, "review": {"lookback_days": 60}})
    result = world.review(2000)
    assert result.scorecard.verdict == "failing"
    assert result.decision.action == "rollback" and result.decision.challenger_version == good
    assert load_strategy_config(world.path).version == good
    with world.factory() as s:
        state = s.get(DaemonState, "main")
    assert state.state == "halted" and "Hermes: failure threshold breached (sharpe" in state.reason


def test_a_failing_goal_in_read_only_mode_halts_nothing(world):
    world.drive(0, 1500)
    world.goals = Goals.model_validate({"failure": {"thresholds": {"sharpe": 15.0}}, "review": {"lookback_days": 60}})
    before = world.path.read_text()
    result = world.review(1500)
    assert result.scorecard.verdict == "failing" and result.mode == "read_only"
    assert "read-only: the daemon would be halted" in result.decision.reason
    assert not result.decision.applied and world.path.read_text() == before
    with world.factory() as s:
        assert s.get(DaemonState, "main").state == "running"


def test_no_experiment_starts_while_the_daemon_is_halted(world):
    world.drive(0, 1500)
    world.review(1500)
    world.approve()
    with world.factory.begin() as s:
        state = s.get(DaemonState, "main")
        state.state, state.reason = "halted", "by hand"
    world.drive(1500, 2300)
    result = world.review(2300)
    assert result.decision.action == "none" and "halted (by hand)" in result.decision.reason
    with world.factory() as s:
        assert s.query(Experiment).count() == 0


def test_cli_approve_needs_a_review_then_history_and_rollback(world, tmp_path):
    env = {"DATABASE_URL": world.url, "TRADER_DATA_DIR": str(tmp_path), "PATH": ""}

    def hermes(*args):
        return subprocess.run([sys.executable, "-m", "hermes.cli", *map(str, args)], capture_output=True,
                              text=True, cwd=ROOT, env=env, timeout=120)

    none_yet = subprocess.run([sys.executable, "-m", "trader.cli", "report"], capture_output=True, text=True,
                              cwd=ROOT, env=env, timeout=120)
    assert none_yet.returncode == 2 and "no Hermes review in the ledger yet" in none_yet.stderr
    refused = hermes("approve", "--yes")
    assert refused.returncode == 2 and "until one read-only review has completed" in refused.stderr
    world.drive(0, 1500)
    data = tmp_path / "bars.csv"
    world.btc.iloc[:1500].to_csv(data)
    goals = tmp_path / "goals.yaml"
    goals.write_text("failure:\n  thresholds:\n    max_drawdown: 0.5\nreview:\n  lookback_days: 60\n")
    reviewed = hermes("review", "--config", world.path, "--goals", goals, "--data", data, "--json",
                      "--now", world.btc.index[1499].isoformat())
    assert reviewed.returncode == 0, reviewed.stderr
    assert json.loads(reviewed.stdout)["mode"] == "read_only"
    shown = subprocess.run([sys.executable, "-m", "trader.cli", "report"], capture_output=True, text=True,
                           cwd=ROOT, env=env, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "read-only" in shown.stdout.lower() and "full report:" in shown.stdout
    raw = subprocess.run([sys.executable, "-m", "trader.cli", "report", "--markdown"], capture_output=True,
                         text=True, cwd=ROOT, env=env, timeout=120)
    assert raw.stdout.startswith("# Hermes weekly review")
    assert hermes("approve", "--yes").returncode == 0
    with world.factory() as s:
        assert cycle_module.mode_of(s) == "apply"
    assert "read-only from the next review" in hermes("approve", "--revoke").stdout
    with world.factory() as s:
        assert cycle_module.mode_of(s) == "read_only"
    first = load_strategy_config(world.path).version
    world.path.write_text(world.path.read_text().replace("fast: 20", "fast: 25"))
    with world.factory.begin() as s:
        store.ensure_version(s, load_strategy_config(world.path))
    history = json.loads(hermes("history", "--json").stdout)
    assert {v["version"] for v in history["versions"]} >= {first}
    assert history["reviews"][0]["mode"] == "read_only"
    rolled = hermes("rollback", first, "--config", world.path)
    assert rolled.returncode == 0, rolled.stderr
    assert load_strategy_config(world.path).version == first
    unknown = hermes("rollback", "nope", "--config", world.path)
    assert unknown.returncode == 2 and "unknown strategy version 'nope'" in unknown.stderr

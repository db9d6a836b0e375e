"""Hermes cycles on a ledger filled by replaying real candles through the daemon's engine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
import subprocess
import sys

import pytest

from hermes import cycle as cycle_module
from hermes import budget, experiments, sequential
from hermes.apply import apply_pending_fix, pending_fix
from hermes.cycle import CycleInputs, run_cycle
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
FAILING = Goals.model_validate({"failure": {"thresholds": {"sharpe": 15.0}}, "review": {"lookback_days": 60}})


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
        """The daemon trading bars [start, stop): the main book and every running experiment's
        challenger and control books (the daemon's shadow engines)."""
        config = load_strategy_config(self.path)
        engines = [Engine(config=config, goals=None, sessions=self.factory, broker=PaperBroker("USD"))]
        with self.factory() as s:
            for book, version in experiments.books(s).items():
                settings = dict(s.get(StrategyVersion, version).settings)
                engines.append(Engine(config=parse_strategy_config(settings, "<c>"), goals=None,
                                      sessions=self.factory, broker=PaperBroker("USD"), book=book))
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

    def running(self):
        with self.factory() as s:
            return [(e.id, e.variable, e.value, e.book, e.control_book) for e in experiments.running(s)]


@pytest.fixture
def world(tmp_path, btc):
    """On SQLite; the two tests that write most of Hermes' tables run on PostgreSQL too (`pg_world`)."""
    return World(tmp_path, btc, f"sqlite:///{tmp_path / 'ledger.db'}")


@pytest.fixture
def pg_world(tmp_path, btc, database_url):
    return World(tmp_path, btc, database_url)


def strong_evidence(monkeypatch):
    """Every claim's test sees overwhelming evidence: a promotion is decided by the cycle's own rules."""
    monkeypatch.setattr(experiments.sequential, "evidence",
                        lambda name, c, b: sequential.Evidence(len(c), 1.0, 1e12, 1.0))


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
    md = Path(result.report_path)
    assert md.is_relative_to(world.dir / "reports")
    assert md.exists() and md.with_suffix(".json").exists() and md.with_suffix(".png").exists()
    card = result.scorecard
    assert card.trades >= 10 and card.metrics["sharpe"] is not None
    assert card.slippage_realised == pytest.approx(card.slippage_modeled)  # paper fills slip as modeled
    assert {g.metric for g in card.goals if g.kind == "success"} == {"monthly_return", "sharpe", "max_drawdown"}
    # what it would start: experiments on distinct variables, each aimed at the weakest goal
    assert result.proposals and len({p.variable for p in result.proposals}) == len(result.proposals)
    assert all(p.metric == cycle_module.claim_metric(card) for p in result.proposals)


def test_apply_mode_runs_experiments_beside_a_control_book(pg_world):
    world = pg_world
    world.drive(0, 1500)
    world.review(1500)
    world.approve()
    world.drive(1500, 2300)
    started = world.review(2300)
    assert started.mode == "apply" and 1 <= len(started.proposals) <= experiments.MAX_CHALLENGERS
    config = load_strategy_config(world.path)
    for p in started.proposals:
        bounds = config.tunable[p.variable]
        assert bounds.min <= p.value <= bounds.max and p.value != config.value_of(p.variable)
        assert p.candidates_tried > 20
    running = world.running()
    assert [r[1] for r in running] == [p.variable for p in started.proposals]
    assert len({r[4] for r in running}) == 1 and running[0][4].startswith("control-")  # one shared control
    # the yearly budget: half a year's income is there at once, shared in the proposer's order,
    # the lead candidate twice the others' share, none above a quarter of a year's
    weights = [budget.LEAD_WEIGHT] + [1.0] * (len(running) - 1)
    free = budget.ALPHA_PER_YEAR * budget.ADVANCE_WEEKS / 52
    expected = [min(free * w / sum(weights), budget.ALPHA_PER_YEAR * budget.MAX_SHARE) for w in weights]
    with world.factory() as s:
        rows = experiments.running(s)
        assert [e.alpha for e in rows] == pytest.approx(expected)
        level = {e.id: e.alpha for e in rows}
        assert all(e.metric == started.proposals[0].metric and e.prior["challenger"] for e in rows)
        assert budget.available(s, started.time)[2] == pytest.approx(free - sum(expected), abs=1e-12)
    world.drive(2300, 3000)
    judged = world.review(3000)
    assert {d.experiment_id for d in judged.decisions} == {r[0] for r in running}
    for d in judged.decisions:
        assert d.action in ("continue", "reject", "promote", "expire")
        e = d.evidence
        assert e["forward_bars"] == 699 and e["prior_bars"] > 100  # the held-out fold opens the test
        assert e["threshold"] == pytest.approx(1 / level[d.experiment_id]) and e["e_value"] > 0
        assert e["claim"] == started.proposals[0].metric and e["statistic"] == sequential.claim_for(e["claim"], d.variable).statistic
    with world.factory() as s:
        assert len(store.equity_of(s, running[0][3])) == 700 and len(store.equity_of(s, running[0][4])) == 700


def test_one_promotion_per_cycle_rewrites_the_file_and_stops_the_others(pg_world, monkeypatch):
    world = pg_world
    world.drive(0, 1500)
    world.review(1500)
    world.approve(live=True)
    world.drive(1500, 2300)
    before = load_strategy_config(world.path)
    with world.factory.begin() as s:
        s.add(Approval(kind="live", strategy_version=before.version))
    started = world.review(2300)
    assert len(started.proposals) >= 2  # so that "one promotion" is a real choice
    world.drive(2300, 2400)  # 4 days: too early, however strong the evidence
    strong_evidence(monkeypatch)
    early = world.review(2400)
    assert all(d.action == "continue" for d in early.decisions) and load_strategy_config(world.path) == before
    world.drive(2400, 2500)
    promoted = world.review(2500)
    winners = [d for d in promoted.decisions if d.action == "promote"]
    assert len(winners) == 1 and winners[0].applied and promoted.decision == winners[0]
    after = load_strategy_config(world.path)
    chosen = next(p for p in started.proposals if p.variable == winners[0].variable)
    assert after.version == chosen.version != before.version
    text = world.path.read_text()
    assert text.startswith("# Hermes ") and "promoted" in text.splitlines()[0]
    assert "# The strategy the daemon trades." in text  # the user's comments are kept
    assert (world.dir / "versions" / f"strategy-{before.version}.yaml").read_text() == STRATEGY_YAML.read_text()
    with world.factory() as s:
        live = store.latest_approval(s, "live")
        statuses = {e.id: e.status for e in s.query(Experiment)}
    assert live.strategy_version == after.version  # inherited: apply mode was approved with --live
    assert statuses[winners[0].experiment_id] == "promoted"
    old = {r[0] for r in world.running()} & set(statuses)
    assert all(statuses[i] in ("promoted", "stopped") for i in statuses if i not in old)
    # new experiments start from the promoted version
    assert promoted.strategy_version == after.version
    with world.factory() as s:
        assert all(e.baseline_version == after.version for e in experiments.running(s))


def test_a_failing_goal_halts_and_learning_goes_on_until_resume_applies_the_fix(world):
    world.drive(0, 1500)
    world.review(1500)  # version A, not failing under the loose goals
    world.approve()
    good = load_strategy_config(world.path).version
    world.path.write_text(world.path.read_text().replace("fast: 20", "fast: 30"))
    world.drive(1500, 2000)
    world.goals = FAILING
    result = world.review(2000)
    assert result.scorecard.verdict == "failing" and result.halted.startswith("Hermes: failure threshold breached")
    assert result.fix.action == "rollback" and result.fix.challenger_version == good and not result.fix.applied
    assert load_strategy_config(world.path).version != good  # nothing applied while halted
    what_if = result.fix.evidence  # what the current version and the rollback would have done
    assert what_if["window_days"] == 60 and what_if["current"]["sharpe"] != what_if["rollback"]["sharpe"]
    assert "| rollback |" in Path(result.report_path).read_text()
    # learning goes on: experiments aimed at the breached metric trade on paper while halted
    assert result.proposals and all(p.metric == "sharpe" for p in result.proposals)
    running = world.running()
    assert running
    world.drive(2000, 2200)
    with world.factory() as s:
        assert s.get(DaemonState, "main").state == "halted"
        assert len(store.equity_of(s, running[0][3])) == 200  # the shadow books traded
        assert pending_fix(s, "main").challenger_version == good
    # `trader resume` applies the fix, then resumes
    env = {"DATABASE_URL": world.url, "TRADER_DATA_DIR": str(world.dir), "PATH": ""}
    resumed = subprocess.run([sys.executable, "-m", "trader.cli", "resume", "--config", str(world.path)],
                             capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "applied Hermes' fix: rollback" in resumed.stdout and load_strategy_config(world.path).version == good
    with world.factory() as s:
        assert s.get(DaemonState, "main").state == "running" and pending_fix(s, "main") is None
    assert apply_pending_fix(world.factory, world.path, world.dir, "main", world.btc.index[2199].to_pydatetime()) is None


def test_a_failing_read_only_review_changes_nothing_even_with_a_version_to_roll_back_to(world):
    world.drive(0, 1500)
    world.review(1500)  # version A, read-only, not failing
    good = load_strategy_config(world.path).version
    world.path.write_text(world.path.read_text().replace("fast: 20", "fast: 30"))
    world.drive(1500, 2000)
    world.goals = FAILING
    before = world.path.read_text()
    result = world.review(2000)
    assert result.scorecard.verdict == "failing" and result.mode == "read_only"
    assert result.fix.challenger_version == good and not result.fix.applied  # what it would propose
    assert "read-only: the daemon would be halted" in result.fix.reason
    assert world.path.read_text() == before and result.halted is None
    with world.factory() as s:
        assert s.get(DaemonState, "main").state == "running"
        assert s.query(Experiment).count() == 0
        assert pending_fix(s, "main") is None
    # approved later and halted: what the read-only review described is still not a fix to apply
    world.approve()
    with world.factory.begin() as s:
        s.get(DaemonState, "main").state = "halted"
    with world.factory() as s:
        assert pending_fix(s, "main") is None


def test_a_revoked_approval_stops_the_experiments_and_promotes_nothing(world, monkeypatch):
    world.drive(0, 1500)
    world.review(1500)
    world.approve()
    world.drive(1500, 2300)
    assert world.review(2300).proposals
    ids = [r[0] for r in world.running()]
    with world.factory.begin() as s:
        for a in s.query(Approval).filter_by(kind="hermes_apply"):
            a.revoked_at = world.btc.index[2300].to_pydatetime()
    world.drive(2300, 2700)
    strong_evidence(monkeypatch)
    before = world.path.read_text()
    result = world.review(2700)
    assert result.mode == "read_only" and world.path.read_text() == before
    assert {d.experiment_id for d in result.decisions} == set(ids)
    assert all(d.action == "stop" and not d.applied for d in result.decisions)
    with world.factory() as s:
        assert {e.status for e in s.query(Experiment)} == {"stopped"}


def test_experiments_go_on_while_the_daemon_is_halted_by_hand(world):
    world.drive(0, 1500)
    world.review(1500)
    world.approve()
    world.drive(1500, 2300)
    world.review(2300)
    running = world.running()
    with world.factory.begin() as s:
        state = s.get(DaemonState, "main")
        state.state, state.reason = "halted", "by hand"
    world.drive(2300, 2700)
    result = world.review(2700)
    assert result.halted == "by hand"
    assert {d.experiment_id for d in result.decisions} >= {r[0] for r in running}
    assert all(d.action != "stop" for d in result.decisions)


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
    beyond = hermes("review", "--config", world.path, "--goals", goals, "--data", data,
                    "--now", world.btc.index[2000].isoformat())
    assert beyond.returncode == 2 and "Traceback" not in beyond.stderr
    assert "candles cover 2017-07-01 11:00 to" in beyond.stderr and "--now TIME" in beyond.stderr
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


def test_the_stake_answers_a_breached_drawdown_only(tmp_path, btc, monkeypatch):
    """Holding less shrinks the gains with the losses. Aimed at a drawdown *success* goal, Hermes
    proposes no stake change, and any drawdown claim must show losses cut by more than gains;
    against a breached failure threshold a risk setting may bring the drawdown down mechanically."""
    screened = []
    plan = cycle_module.proposer.plan_variants
    monkeypatch.setattr(cycle_module.proposer, "plan_variants",
                        lambda *a, **k: screened.append({n for n, _ in plan(*a, **k)}) or plan(*a, **k))

    def started(goals, name):
        screened.clear()
        (tmp_path / name).mkdir()
        world = World(tmp_path / name, btc, f"sqlite:///{tmp_path / name / 'ledger.db'}", goals)
        world.path.write_text(world.path.read_text().replace(
            "tunable:\n", "tunable:\n  stake_fraction: {min: 0.1, max: 1.0, step: 0.1}\n"))
        world.drive(0, 1500)
        world.review(1500)
        world.approve()
        world.drive(1500, 2000)
        result = world.review(2000)
        with world.factory() as s:
            return result, {e.variable: e.statistic for e in experiments.running(s)}

    success_only = Goals.model_validate({"success": {"max_drawdown": 0.001},
                                         "failure": {"thresholds": {"max_drawdown": 0.9}, "monthly_return_floor": None},
                                         "review": {"lookback_days": 60}})
    result, claims = started(success_only, "success")
    assert result.scorecard.verdict != "failing" and result.scorecard.weakest == "max_drawdown"
    assert screened[-1] >= {"fast", "slow", "stop_loss"} and "stake_fraction" not in screened[-1]
    assert set(claims.values()) <= {"downside_asymmetry"}

    breached = Goals.model_validate({"failure": {"thresholds": {"max_drawdown": 0.001}, "monthly_return_floor": None},
                                     "review": {"lookback_days": 60}})
    result, claims = started(breached, "breach")
    assert result.scorecard.verdict == "failing" and result.halted
    assert "stake_fraction" in screened[-1]
    assert "stake_fraction" in claims or "stop_loss" in claims, result.screening  # risk settings first
    for variable, statistic in claims.items():
        assert statistic == ("downside_variance" if variable in sequential.MECHANICAL else "downside_asymmetry")

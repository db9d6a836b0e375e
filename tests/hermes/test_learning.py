"""Hermes learns rather than wanders: weekly cycles on candles replayed through the daemon.

Each simulation is `hermes simulate`'s own machinery (`hermes.simulation.simulate`): the engine
trades the main book and every running experiment's challenger and control books bar by bar,
`run_cycle` runs at every review time, apply mode is approved after the first read-only
review. Hourly bars, a 28-day lookback, Hermes' book only (the other policies are for the
benchmark), which keeps the file well under a minute. benchmarks/bench_hermes.py runs the
same experiments over many seeds (benchmarks/HERMES.md).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from hermes.simulation import changed_leaves, coarse_grid, simulate
from trader.backtest import sweep
from trader.config import parse_strategy_config
from trader.goals import Goals

from ..conftest import BTC_1H, ROOT, STRATEGY_YAML
from .markets import PLANTED_STRATEGY, lenient_goals, planted_rsi, random_walk

WEEK = 168
PLANTED, START = 20.0, 30.0  # the oversold level the market obeys; the strategy's starting level
PLANTED_WEEKS = 12
RANDOM_SEEDS, RANDOM_WEEKS = (0,), 10


def run(tmp, frame, text, goals):
    path = tmp / "strategy.yaml"
    path.write_text(text)
    return simulate(frame, path, goals, tmp, policies=("hermes",))


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    frame = planted_rsi(200 + (4 + PLANTED_WEEKS) * WEEK, seed=0)
    return run(tmp_path_factory.mktemp("planted"), frame, PLANTED_STRATEGY, lenient_goals(28, {"sharpe": 2.0}))


@pytest.fixture(scope="module")
def random_runs(tmp_path_factory):
    return [run(tmp_path_factory.mktemp(f"walk{seed}"), random_walk(200 + (4 + RANDOM_WEEKS) * WEEK, seed),
                STRATEGY_YAML.read_text(), lenient_goals(28)) for seed in RANDOM_SEEDS]


def test_the_planted_level_is_the_best_one_by_a_wide_margin():
    config = parse_strategy_config(yaml.safe_load(PLANTED_STRATEGY), "<planted>")
    frame = planted_rsi(365 * 24, seed=100)
    assert frame.equals(planted_rsi(365 * 24, seed=100))  # deterministic
    table = sweep(frame, config, [{"oversold": float(v)} for v in range(10, 41)]).set_index("oversold")
    assert table["sharpe"].idxmax() == PLANTED
    assert table.loc[PLANTED, "sharpe"] - table.loc[START, "sharpe"] > 10  # annualised Sharpe
    assert table.loc[PLANTED, "sharpe"] > table.drop(PLANTED)["sharpe"].max() + 3


def test_hermes_moves_the_variable_to_the_planted_optimum(planted_run):
    path = planted_run.trajectory("oversold")
    assert path[0] == START
    assert planted_run.cycles[0].result.mode == "read_only" and path[1] == START  # the first review only observes
    assert abs(path[-1] - PLANTED) <= 1.0  # found, within the 12 weeks
    assert planted_run.promotions and all(c.promoted.variable == "oversold" for c in planted_run.promotions)
    for before, after in zip(path, path[1:]):
        assert abs(after - PLANTED) <= abs(before - PLANTED)  # never away from it
    # each promotion earned its level on the claim it made, after a week of shadow trading
    for c in planted_run.promotions:
        e = c.promoted.evidence
        assert e["claim"] == "sharpe" and e["e_value"] >= e["threshold"] == pytest.approx(1 / e["alpha"])
        assert e["days"] >= 7 and e["forward_bars"] >= 20 and e["prior_bars"] > 0


def test_no_promotion_on_random_walks(random_runs):
    judged = 0
    for run_ in random_runs:
        assert run_.promotions == []
        assert {c.version for c in run_.cycles} == {run_.initial.version}  # the strategy never changed
        judged += sum(1 for c in run_.cycles for d in c.result.decisions if d.action in ("continue", "reject"))
    assert judged >= 3  # not vacuous: experiments ran and were judged


def test_while_every_review_fails_hermes_still_finds_the_fix_and_resume_applies_it(tmp_path):
    """A failure threshold no strategy can meet: every review halts the main book. The
    experiments go on in shadow, and the promotion they earn is the fix the resume applies."""
    goals = Goals.model_validate({"success": {"sharpe": 2.0}, "failure": {"thresholds": {"sharpe": 20.0},
                                  "monthly_return_floor": None}, "review": {"lookback_days": 28}})
    path = tmp_path / "strategy.yaml"
    path.write_text(PLANTED_STRATEGY)
    result = simulate(planted_rsi(200 + 10 * WEEK, seed=0), path, goals, tmp_path, policies=("hermes",))
    assert all(c.result.scorecard.verdict == "failing" for c in result.cycles)
    assert all(c.result.halted for c in result.cycles[1:])  # apply mode: every review halts
    fixed = [c for c in result.cycles if c.promoted is not None]
    assert len(fixed) == 1 and fixed[0].applied_at_resume.startswith("promote")
    assert fixed[0].promoted.variable == "oversold" and fixed[0].values["oversold"] == PLANTED
    assert result.trajectory("oversold")[-1] == PLANTED


def _check_run(run_) -> int:
    """Every proposal and experiment of a run: one tunable variable, inside its bounds, on its
    grid, and consecutive strategy versions differ in at most that one variable."""
    seen = 0
    config = run_.initial
    previous = config.to_dict()
    paths = {name: config.path_of(name) for name in config.tunable}
    for c in run_.cycles:
        after = config.with_values(c.values).to_dict()
        changed = changed_leaves(previous, after)
        assert changed == ([paths[c.promoted.variable]] if c.promoted else [])
        for p in c.result.proposals:
            seen += 1
            bounds = config.tunable[p.variable]
            assert bounds.min <= p.value <= bounds.max
            assert abs((p.value - bounds.min) / bounds.step - round((p.value - bounds.min) / bounds.step)) < 1e-6
            assert p.value != p.baseline_value
        assert len({p.variable for p in c.result.proposals}) == len(c.result.proposals)  # one per variable
        previous = after
    for e in run_.experiments:
        assert changed_leaves(e["baseline_settings"], e["challenger_settings"]) == [paths[e["variable"]]]
    return seen


def test_one_variable_inside_its_bounds_in_every_proposal_and_promotion(planted_run, random_runs):
    proposals = sum(_check_run(r) for r in [planted_run, *random_runs])
    experiments = sum(len(r.experiments) for r in [planted_run, *random_runs])
    assert proposals >= 6 and experiments >= 4  # the checks above saw real traffic


def test_the_naive_grid_covers_every_tunable_within_its_bounds():
    config = parse_strategy_config(yaml.safe_load(STRATEGY_YAML.read_text()), "<shipped>")
    grid = coarse_grid(config, points=5)
    for name, b in config.tunable.items():
        values = {c.value_of(name) for c in grid}
        assert min(values) == pytest.approx(b.min) and max(values) == pytest.approx(b.max)
        assert all(b.min <= v <= b.max for v in values)
    assert all(c.params.fast < c.params.slow for c in grid) and len(grid) > 50


def test_hermes_simulate_from_the_command_line(tmp_path):
    goals = tmp_path / "goals.yaml"
    goals.write_text("failure:\n  thresholds:\n    max_drawdown: 0.5\nreview:\n  lookback_days: 30\n")
    env = {"TRADER_DATA_DIR": str(tmp_path / "data"), "PATH": ""}

    def hermes(*args):
        return subprocess.run([sys.executable, "-m", "hermes.cli", "simulate", "--config", str(STRATEGY_YAML),
                               "--goals", str(goals), *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                              env=env, timeout=300)

    short = tmp_path / "short.csv"
    lines = BTC_1H.read_text().splitlines(keepends=True)
    short.write_text("".join(lines[:1000]))
    refused = hermes("--data", short)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "short.csv" in refused.stderr and "41 days" in refused.stderr and "lookback (30 days)" in refused.stderr
    data = tmp_path / "bars.csv"
    data.write_text("".join(lines[:1700]))  # 70 days: the warm-up, the lookback and three reviews
    done = hermes("--data", data, "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert {"experiments", "promotions", "hermes", "fixed", "reoptimized"} <= set(out)
    for policy in ("hermes", "fixed", "reoptimized"):
        assert {"total_return", "sharpe", "max_drawdown", "breaches", "halts"} <= set(out[policy])
    assert out["period"]["reviews"] >= 2 and out["experiments"] >= 1
    assert out["path"][0] == {"time": out["period"]["first_review"], "fast": 20, "slow": 50, "stop_loss": 0.05}
    report = tmp_path / "data" / "reports"
    md = next(report.glob("*-simulation.md"))
    assert md.with_suffix(".png").stat().st_size > 10_000 and md.with_suffix(".json").exists()
    assert "| fixed baseline |" in md.read_text()
    # the user's strategy file is never rewritten by a simulation
    assert STRATEGY_YAML.read_text().startswith("# The strategy the daemon trades.")

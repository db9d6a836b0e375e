"""Does Hermes learn? Speed of a cycle, false promotions, a planted optimum, and real BTC.

    .venv/bin/python benchmarks/bench_hermes.py --speed                 # full-cycle time (~1 min)
    .venv/bin/python benchmarks/bench_hermes.py --false-promotions 80   # random walks (~14 min)
    .venv/bin/python benchmarks/bench_hermes.py --planted               # planted optimum (~3 min)
    .venv/bin/python benchmarks/bench_hermes.py --btc                   # real BTC, out of sample (~3 min)
    .venv/bin/python benchmarks/bench_hermes.py --btc-shipped-goals     # BTC under the shipped goals (~30 s)
    options: --jobs 2 (processes for the seed loops), --seeds N (planted), --json PATH

Every figure comes from `hermes.simulation`: candles replayed bar by bar through the daemon's
engine (baseline and shadow books, paper broker, SQLite ledger) and the real weekly
`run_cycle`, apply mode approved after the first read-only cycle. Method and figures:
benchmarks/HERMES.md.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

import pandas as pd  # noqa: E402

from hermes import proposer  # noqa: E402
from hermes.cycle import CycleInputs, rejected_values, run_cycle  # noqa: E402
from hermes.observe import equity_series, observe  # noqa: E402
from hermes.report import write_report  # noqa: E402
from hermes.scoring import score  # noqa: E402
from hermes.stats import paired_block_bootstrap  # noqa: E402
from hermes.simulation import (  # noqa: E402
    PLANTED_STRATEGY, lenient_goals, naive_reoptimise, oos_metrics, planted_rsi, random_walk, replay_fixed,
    simulate,
)
from hermes.types import CycleResult, ExperimentDecision  # noqa: E402
from trader.backtest import sweep  # noqa: E402
from trader.config import load_strategy_config, parse_strategy_config  # noqa: E402
from trader.ledger import open_ledger, sessions  # noqa: E402
from trader.ledger.models import MAIN_BOOK, Approval  # noqa: E402
from trader.ohlcv import load_ohlcv  # noqa: E402

REAL_1H = Path("/work/shared/data/coinbase-btcusd-1h.csv")
SHIPPED = ROOT / "config" / "strategy.yaml"
HISTORY = 500  # bars before the daemon starts: indicator warm-up for the engine's view
WEEK = 168  # hourly bars


def _table(rows: list[dict[str, Any]], title: str) -> None:
    print(f"\n{title}")
    if not rows:
        print("  (nothing)")
        return
    cols = list(dict.fromkeys(c for r in rows for c in r))  # every row's keys, first seen first
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    print("  " + "  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in cells:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return "-" if v is None else str(v)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) binomial interval for k successes in n trials, by bisection on
    the binomial CDF (no scipy needed)."""
    def cdf(x: int, p: float) -> float:
        return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(x + 1))

    def solve(f, target: float) -> float:  # f decreasing in p on [0, 1]
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if f(mid) > target else (lo, mid)
        return (lo + hi) / 2

    a = (1 - level) / 2
    lower = 0.0 if k == 0 else solve(lambda p: cdf(k - 1, p), 1 - a)  # P(X >= k) = a
    upper = 1.0 if k == n else solve(lambda p: cdf(k, p), a)  # P(X <= k) = a
    return lower, upper


# -- (i) speed of one full cycle ----------------------------------------------------------------


def speed(reps: int) -> dict[str, Any]:
    """A ledger with 13 weeks (91 days) of hourly paper trading on real BTC, goals looking back
    90 days, ~100 candidates; run_cycle timed on a fresh copy each time, then its stages."""
    frame = load_ohlcv(REAL_1H)
    raw = yaml.safe_load(SHIPPED.read_text())
    # the shipped tunables offer only 8 stop-loss values (77 candidates at most); a finer
    # stop-loss step brings one cycle to the ~100 candidate backtests the goal names
    raw["tunable"]["stop_loss"] = {"min": 0.02, "max": 0.10, "step": 0.0025}
    config = parse_strategy_config(raw, "<speed>")
    goals = lenient_goals(90)
    root = Path(tempfile.mkdtemp(prefix="hermes-speed-"))
    seed_dir = root / "seed"
    end = HISTORY + 13 * WEEK
    simulate(frame.iloc[:end], config, goals, weeks_warmup=13, cycles=1, workdir=seed_dir, start=HISTORY)
    factory = sessions(open_ledger(f"sqlite:///{seed_dir / 'ledger.db'}"))
    with factory.begin() as s:
        s.add(Approval(kind="hermes_apply", detail={"live": False}))
    factory.kw["bind"].dispose()
    now = frame.index[end - 1].to_pydatetime()
    ohlcv = frame.iloc[:end]

    totals, stages, tried = [], {"observe+score": [], "propose (plan+walk-forward+choose)": [], "report+chart": []}, 0
    for rep in range(reps + 1):  # the first run warms caches (numba, matplotlib) and is not counted
        work = root / f"run{rep}"
        shutil.copytree(seed_dir, work, ignore=shutil.ignore_patterns("reports"))
        factory = sessions(open_ledger(f"sqlite:///{work / 'ledger.db'}"))
        t0 = time.perf_counter()
        result = run_cycle(factory, CycleInputs(config_path=work / "strategy.yaml", goals=goals, ohlcv=ohlcv,
                                                data_dir=work, now=now, budget=100))
        total = time.perf_counter() - t0
        # the stages again, on the same inputs, one by one
        cfg = load_strategy_config(work / "strategy.yaml")
        t1 = time.perf_counter()
        with factory() as s:
            seen = observe(s, MAIN_BOOK, cfg.timeframe, "BTC", now - timedelta(days=90), now, cfg.risk.slippage)
            week = observe(s, MAIN_BOOK, cfg.timeframe, "BTC", now - timedelta(days=7), now, cfg.risk.slippage)
        card = score(goals, seen.metrics, week.metrics, seen.trades, seen.equity, 90, seen.fees_paid,
                     seen.slippage_realised, cfg.risk.slippage)
        t2 = time.perf_counter()
        with factory() as s:
            refused = rejected_values(s)
        variants = proposer.plan_variants(cfg, card.weakest, refused, budget=100)
        window = ohlcv[ohlcv.index >= now - timedelta(days=90)]
        candidates = proposer.evaluate(window, cfg, variants, card.weakest or "sharpe")
        proposer.choose(candidates, card.weakest)
        t3 = time.perf_counter()
        with factory() as s:
            base = equity_series(s, MAIN_BOOK, since=now - timedelta(days=90))
        fake = CycleResult(review_id=None, time=now, mode="apply", strategy_version=cfg.version, scorecard=card,
                           decision=ExperimentDecision(experiment_id=None, action="none", reason="timing"),
                           proposal=result.proposal)
        write_report(fake, work / "stage-report", base, base * 1.01)
        t4 = time.perf_counter()
        factory.kw["bind"].dispose()
        if rep == 0:
            first = total
            continue
        totals.append(total)
        for key, dt in zip(stages, (t2 - t1, t3 - t2, t4 - t3)):
            stages[key].append(dt)
        tried = len(candidates)
    shutil.rmtree(root, ignore_errors=True)
    rows = [{"stage": "full run_cycle", "median s": statistics.median(totals), "min s": min(totals),
             "max s": max(totals), "n": len(totals)}]
    rows += [{"stage": k, "median s": statistics.median(v), "min s": min(v), "max s": max(v), "n": len(v)}
             for k, v in stages.items()]
    rows.append({"stage": "first run_cycle in the process (imports, JIT, fonts)", "median s": first,
                 "min s": None, "max s": None, "n": 1})
    _table(rows, f"(i) one Hermes cycle: 91 days of hourly paper trading in the ledger, 90-day lookback, "
                 f"{tried} candidates x 4 walk-forward folds, report + chart (goal: < 10 s)")
    return {"rows": rows, "candidates": tried}


# -- alternative promotion rules, replayed on the recorded evidence ----------------------------
#
# Each judgement's evidence (paired bars n, min_bars, mean difference, bootstrap p) is kept in
# the cycle records. Until a run's first promotion its path does not depend on the rule, so
# "would this rule have promoted by cycle k" is exact for the first promotion of each run.
RULES = {
    "as built: p < Sidak(0.05, variants tried), n >= 168": None,
    "p < 0.05 / 4 looks, n >= 167": (0.05 / 4, -1),
    "p < 0.005 per look, n >= 167": (0.005, -1),
    "p < 0.05 per look, n >= 167": (0.05, -1),
}


def _judgements(res) -> list[dict[str, Any]]:
    out = []
    for c in res.cycles:
        ev = c.decision.evidence
        if c.decision.action in ("continue", "promote", "reject") and "p_value" in ev:
            out.append({"cycle": c.index + 1, "action": c.decision.action, "n": ev["n"],
                        "min_bars": ev["min_bars"], "mean_diff": ev["mean_diff"], "p": ev["p_value"],
                        "alpha": ev["alpha_adjusted"]})
    return out


def first_promotion(judgements: list[dict[str, Any]], rule: tuple[float, int] | None) -> int | None:
    """The cycle (1-based) of the first promotion under `rule` (alpha, slack on min_bars)."""
    for j in judgements:
        if rule is None:
            if j["action"] == "promote":
                return j["cycle"]
            continue
        alpha, slack = rule
        if j["n"] >= j["min_bars"] + slack and j["mean_diff"] > 0 and j["p"] < alpha:
            return j["cycle"]
    return None


# -- (ii) false promotions on random walks ------------------------------------------------------


def _random_walk_run(args: tuple[int, int, int, int]) -> dict[str, Any]:
    seed, warmup, cycles, lookback = args
    frame = random_walk(HISTORY + (warmup + cycles) * WEEK, seed)
    with tempfile.TemporaryDirectory(prefix=f"hermes-rw{seed}-") as tmp:
        res = simulate(frame, SHIPPED, lenient_goals(lookback), weeks_warmup=warmup, cycles=cycles,
                       workdir=tmp, start=HISTORY)
    judged = _judgements(res)
    enough = [j for j in judged if j["n"] >= j["min_bars"]]
    return {"seed": seed, "promotions": len(res.promotions),
            "experiments_decided": sum(e["status"] in ("promoted", "rejected") for e in res.experiments),
            "experiments": len(res.experiments), "judgements": judged,
            "p_values": [j["p"] for j in enough], "alpha_adjusted": [j["alpha"] for j in enough]}


def false_promotions(seeds: int, jobs: int, warmup: int = 13, cycles: int = 13, lookback: int = 90) -> dict:
    t0 = time.perf_counter()
    with ProcessPoolExecutor(jobs) as pool:
        runs = list(pool.map(_random_walk_run, [(s, warmup, cycles, lookback) for s in range(seeds)]))
    elapsed = time.perf_counter() - t0
    runs_with = sum(r["promotions"] > 0 for r in runs)
    promoted = sum(r["promotions"] for r in runs)
    decided = sum(r["experiments_decided"] for r in runs)
    p_values = [p for r in runs for p in r["p_values"]]
    lo, hi = clopper_pearson(runs_with, len(runs))
    elo, ehi = clopper_pearson(promoted, max(decided, 1))
    rows = [
        {"measure": "runs with >= 1 promotion", "value": f"{runs_with} / {len(runs)}",
         "rate": runs_with / len(runs), "95% CI": f"[{lo:.3f}, {hi:.3f}]"},
        {"measure": "promotions per decided experiment", "value": f"{promoted} / {decided}",
         "rate": promoted / max(decided, 1), "95% CI": f"[{elo:.3f}, {ehi:.3f}]"},
        {"measure": "experiments started", "value": str(sum(r["experiments"] for r in runs)), "rate": None,
         "95% CI": None},
        {"measure": "judgements with p < 0.05 (calibration, not a decision)",
         "value": f"{sum(p < 0.05 for p in p_values)} / {len(p_values)}",
         "rate": sum(p < 0.05 for p in p_values) / max(len(p_values), 1), "95% CI": None},
        {"measure": "judgements with p < 0.01", "value": f"{sum(p < 0.01 for p in p_values)} / {len(p_values)}",
         "rate": sum(p < 0.01 for p in p_values) / max(len(p_values), 1), "95% CI": None},
    ]
    _table(rows, f"(ii) false promotions: {len(runs)} random walks (seeds 0..{seeds - 1}), shipped ma_cross "
                 f"config, {warmup} warm-up weeks + {cycles} weekly cycles, {lookback}-day lookback "
                 f"({elapsed / 60:.1f} min on {jobs} processes; goal <= 5 %)")
    alt = []
    for name, rule in RULES.items():
        k = sum(first_promotion(r["judgements"], rule) is not None for r in runs)
        a, b = clopper_pearson(k, len(runs))
        alt.append({"promotion rule": name, "runs with a false promotion": f"{k} / {len(runs)}",
                    "rate": k / len(runs), "95% CI": f"[{a:.3f}, {b:.3f}]"})
    _table(alt, "(ii-b) the same runs under other promotion rules (exact up to each run's first promotion)")
    if p_values:
        print(f"  Sidak-adjusted alpha used: {min(a for r in runs for a in r['alpha_adjusted']):.6f} .. "
              f"{max(a for r in runs for a in r['alpha_adjusted']):.6f}; smallest bootstrap p possible: 1/2001 = 0.0004998")
    return {"rows": rows, "runs": runs, "elapsed_s": elapsed}


# -- (iii) planted optimum ----------------------------------------------------------------------

PLANTED = 20.0  # the oversold level the synthetic market obeys
START_VALUE = 30.0


def landscape(seeds: int = 3, drift: float = 0.002) -> None:
    """The planted effect as the backtester sees it: one variable at a time from the start
    config, a year of bars, Sharpe averaged over seeds."""
    config = parse_strategy_config(yaml.safe_load(PLANTED_STRATEGY), "<planted>")
    frames = [planted_rsi(365 * 24, 100 + s, drift=drift) for s in range(seeds)]
    rows = []
    for name in config.tunable:
        b = config.tunable[name]
        values = [b.min + i * b.step for i in range(int((b.max - b.min) / b.step) + 1)]
        variants = []
        for v in values:
            try:
                config.with_value(name, v)
                variants.append({name: v})
            except Exception:
                continue
        sharpe = sum(sweep(f, config, variants)["sharpe"].to_numpy() for f in frames) / seeds
        best = max(range(len(variants)), key=lambda i: sharpe[i])
        base_i = [i for i, v in enumerate(variants) if v[name] == config.value_of(name)]
        row = {"variable": name, "start": config.value_of(name),
               "Sharpe at start": float(sharpe[base_i[0]]) if base_i else None,
               "best value": variants[best][name], "best Sharpe": float(sharpe[best])}
        if name == "oversold":
            for v in (16, 18, 19, 21, 22, 24):
                row[f"@{v}"] = float(sharpe[[i for i, x in enumerate(variants) if x[name] == v][0]])
        rows.append(row)
    _table(rows, f"(iii-a) planted landscape (drift {drift}, sigma 0.005): one variable at a time, a year of "
                 f"hourly bars, mean annualised Sharpe over {seeds} seeds")


def _planted_run(args: tuple[int, float, int]) -> dict[str, Any]:
    seed, drift, cycles = args
    frame = planted_rsi(HISTORY + (4 + cycles) * WEEK, seed, drift=drift)
    with tempfile.TemporaryDirectory(prefix=f"hermes-planted{seed}-") as tmp:
        res = simulate(frame, PLANTED_STRATEGY, lenient_goals(28, {"sharpe": 2.0}), weeks_warmup=4,
                       cycles=cycles, workdir=tmp, start=HISTORY)
    path = res.trajectory("oversold")
    within = next((i for i, v in enumerate(path) if abs(v - PLANTED) <= 1.0), None)
    return {"seed": seed, "drift": drift, "path": path, "cycles_to_within_1": within,
            "judgements": _judgements(res),
            "promotions": [(c.index + 1, c.decision.variable, c.decision.value) for c in res.promotions],
            "other_variables_moved": sorted({c.decision.variable for c in res.promotions} - {"oversold"})}


def planted(seeds: int, jobs: int, cycles: int = 12, drifts: tuple[float, ...] = (0.002, 0.0015, 0.001)) -> dict:
    landscape()
    t0 = time.perf_counter()
    tasks = [(s, d, cycles) for d in drifts for s in range(seeds)]
    with ProcessPoolExecutor(jobs) as pool:
        runs = list(pool.map(_planted_run, tasks))
    rows = []
    for d in drifts:
        mine = [r for r in runs if r["drift"] == d]
        hit = [r["cycles_to_within_1"] for r in mine if r["cycles_to_within_1"] is not None]
        row = {"drift/bar": d, "seeds": len(mine), "reached 20+-1": f"{len(hit)}/{len(mine)}",
               "cycles to reach (median)": statistics.median(hit) if hit else None,
               "max": max(hit) if hit else None}
        for k in (4, 6, 8, cycles):
            row[f"mean |d| after {k}"] = statistics.mean(abs(r["path"][k] - PLANTED) for r in mine)
        row["other vars promoted"] = sum(bool(r["other_variables_moved"]) for r in mine)
        rows.append(row)
    _table(rows, f"(iii-b) planted optimum oversold = {PLANTED:g}, start {START_VALUE:g} (|d| = 10): "
                 f"{cycles} cycles after 4 warm-up weeks, 28-day lookback, goal Sharpe >= 2 "
                 f"({(time.perf_counter() - t0) / 60:.1f} min); cycles counted from the first, read-only one")
    alt = []
    for d in drifts:
        mine = [r for r in runs if r["drift"] == d]
        row = {"drift/bar": d}
        for name, rule in RULES.items():
            firsts = [first_promotion(r["judgements"], rule) for r in mine]
            hit = [f for f in firsts if f is not None]
            row[name.split(":")[0] if rule is None else name] = (
                f"{len(hit)}/{len(mine)}, median cycle {statistics.median(hit):g}" if hit else f"0/{len(mine)}")
        alt.append(row)
    _table(alt, "(iii-c) first promotion of the first experiment under other rules (exact; any value proposed)")
    for r in runs:
        print(f"  drift {r['drift']} seed {r['seed']}: oversold {' '.join(f'{v:g}' for v in r['path'])}; "
              f"promotions {r['promotions']}")
    return {"rows": rows, "runs": runs}


# -- (iv) real BTC, out of sample ---------------------------------------------------------------


def btc(weeks_warmup: int = 13, lookback: int = 90, points: int = 5) -> dict:
    frame = load_ohlcv(REAL_1H)
    config = load_strategy_config(SHIPPED)
    goals = lenient_goals(lookback)
    cycles = (len(frame) - HISTORY) // WEEK - weeks_warmup
    root = Path(tempfile.mkdtemp(prefix="hermes-btc-"))
    t0 = time.perf_counter()
    res = simulate(frame, SHIPPED, goals, weeks_warmup=weeks_warmup, cycles=cycles, workdir=root / "hermes",
                   start=HISTORY)
    t1 = time.perf_counter()
    fixed = replay_fixed(frame, config, root / "fixed", start=HISTORY)
    t2 = time.perf_counter()
    naive = naive_reoptimise(frame, config, weeks_warmup=weeks_warmup, cycles=cycles, workdir=root / "naive",
                             lookback_days=lookback, start=HISTORY, points=points)
    t3 = time.perf_counter()
    # how much the naive figure depends on the grid's coarseness
    others = {k: naive_reoptimise(frame, config, weeks_warmup=weeks_warmup, cycles=cycles,
                                  workdir=root / f"naive{k}", lookback_days=lookback, start=HISTORY, points=k)
              for k in (3, 7) if k != points}
    since = res.first_cycle_time
    # the Hermes run stops at its last review; compare all three over the same bars
    until = res.equity.index[-1]
    rows = []
    books = [("Hermes-evolved", res.equity), ("fixed baseline", fixed),
             (f"naive weekly re-optimisation ({points}/tunable)", naive.equity)]
    books += [(f"  naive, {k} values per tunable", n.equity) for k, n in others.items()]
    base_r = fixed[(fixed.index >= since) & (fixed.index <= until)].pct_change().dropna()
    for name, eq in books:
        m = oos_metrics(eq[eq.index <= until], since, config.timeframe)
        r = eq[(eq.index >= since) & (eq.index <= until)].pct_change().dropna()
        # is it better than the fixed baseline per bar? Hermes' own paired block bootstrap
        m["p vs fixed"] = None if eq is fixed else paired_block_bootstrap(r.to_numpy(), base_r.to_numpy()).p_value
        rows.append({"strategy": name, **m})
    bh = frame["close"][(frame.index >= since) & (frame.index <= until)]
    rows.append({"strategy": "buy and hold (reference)", "total_return": float(bh.iloc[-1] / bh.iloc[0] - 1),
                 "sharpe": None, "max_drawdown": float((1 - bh / bh.cummax()).max()), "bars": len(bh)})
    _table(rows, f"(iv) real BTC/USD 1h, out of sample {since:%Y-%m-%d %H:%M} .. {until:%Y-%m-%d %H:%M} "
                 f"({cycles} weekly cycles after {weeks_warmup} warm-up weeks, {lookback}-day lookback; "
                 f"naive grid {points} values per tunable)")
    exps = res.experiments
    print(f"  Hermes: {len(exps)} experiments, {len(res.promotions)} promoted, "
          f"{sum(e['status'] == 'rejected' for e in exps)} rejected; verdicts "
          f"{pd.Series([c.verdict for c in res.cycles]).value_counts().to_dict()}")
    for e in exps:
        ev = e["evidence"]
        print(f"    #{e['id']} {e['variable']} {e['baseline_value']} -> {e['value']}: {e['status']} after "
              f"{e['cycles']} cycles, n={ev.get('n')}, p={ev.get('p_value')}, alpha_adj={ev.get('alpha_adjusted')}")
    judged = _judgements(res)
    for name, rule in RULES.items():
        first = first_promotion(judged, rule)
        print(f"  first promotion under '{name}': {'none' if first is None else f'cycle {first}'}")
    changes = pd.DataFrame(naive.choices)
    print(f"  naive: {changes.drop(columns=['time']).drop_duplicates().shape[0]} distinct parameter sets over "
          f"{len(changes)} weeks; in-sample Sharpe of the weekly pick: median {changes['sharpe'].median():.2f}")
    print(f"  wall time: Hermes run {t1 - t0:.0f} s, fixed replay {t2 - t1:.0f} s, naive {t3 - t2:.0f} s")
    shutil.rmtree(root, ignore_errors=True)
    return {"rows": rows, "experiments": [{k: v for k, v in e.items() if not k.endswith("settings")}
                                          for e in exps]}


def btc_shipped_goals(cycles: int = 20) -> dict:
    """The same BTC replay under config/goals.yaml as shipped (failure: drawdown > 15 % or
    Sharpe < 0 over the lookback): what a failing verdict does to the daemon and to Hermes."""
    from trader.goals import load_goals

    frame = load_ohlcv(REAL_1H)
    with tempfile.TemporaryDirectory(prefix="hermes-btc-goals-") as tmp:
        res = simulate(frame, SHIPPED, load_goals(ROOT / "config" / "goals.yaml"), weeks_warmup=13, cycles=cycles,
                       workdir=tmp, start=HISTORY)
        factory = sessions(open_ledger(f"sqlite:///{Path(tmp) / 'ledger.db'}"))
        from trader.ledger.models import DaemonState

        with factory() as s:
            state = s.get(DaemonState, MAIN_BOOK)
            final_state = (state.state, state.reason)
        factory.kw["bind"].dispose()
    rows = [{"cycle": c.index + 1, "time": f"{c.time:%Y-%m-%d}", "mode": c.mode, "verdict": c.verdict,
             "decision": c.decision.action, "proposal": f"{c.proposal.variable} -> {c.proposal.value:g}"
             if c.proposal else None, "baseline equity": c.equity} for c in res.cycles]
    _table(rows, "(iv-b) real BTC under the shipped goals.yaml (everything else as in (iv))")
    print(f"  main book at the end: {final_state[0]} ({final_state[1]})")
    return {"rows": rows, "final_state": final_state}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--false-promotions", type=int, default=0, metavar="N", help="random-walk seeds")
    parser.add_argument("--planted", action="store_true")
    parser.add_argument("--seeds", type=int, default=10, help="planted-optimum seeds per strength")
    parser.add_argument("--btc", action="store_true")
    parser.add_argument("--btc-shipped-goals", action="store_true", help="BTC under config/goals.yaml as shipped")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not (args.speed or args.false_promotions or args.planted or args.btc or args.btc_shipped_goals):
        parser.error("choose at least one of --speed, --false-promotions N, --planted, --btc, --btc-shipped-goals")
    out: dict[str, Any] = {}
    if args.speed:
        out["speed"] = speed(args.reps)
    if args.false_promotions:
        out["false_promotions"] = false_promotions(args.false_promotions, args.jobs)
    if args.planted:
        out["planted"] = planted(args.seeds, args.jobs)
    if args.btc:
        out["btc"] = btc()
    if args.btc_shipped_goals:
        out["btc_shipped_goals"] = btc_shipped_goals()
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    import logging

    logging.disable(logging.INFO)  # Hermes logs every review; the tables are the output
    main()

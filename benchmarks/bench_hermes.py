"""Does Hermes learn, and does it refrain when there is nothing to learn? Evidence for issue 10.

    .venv/bin/python benchmarks/bench_hermes.py --false-hourly 200 --false-daily 200
    .venv/bin/python benchmarks/bench_hermes.py --power 10            # seeds per drift
    .venv/bin/python benchmarks/bench_hermes.py --adaptation          # writes benchmarks/hermes_adaptation.png
    .venv/bin/python benchmarks/bench_hermes.py --real [--data FILE]  # BTC 1h periods, BTC 1d, GOOG 1d
    options: --jobs 2 (processes), --out DIR (JSON lines per run + a summary, default /tmp/bench_hermes),
             --first-seed N, --deadline MINUTES (stop starting new seeds after this wall time)

Every figure comes from the product's own `hermes.simulation.simulate`: candles replayed bar
by bar through the daemon's engine and shadow books on a SQLite ledger, the real weekly
`run_cycle` (read-only first, then apply mode), in a fresh temporary directory per run.

(i)   false promotions: driftless random walks (tests/hermes/markets.random_walk), hourly
      (sigma 0.007, config/strategy.yaml, lenient_goals(90)) and daily (sigma 0.035, the same
      strategy with timeframe 1d, lenient_goals(365)), 52 weekly reviews in apply mode per seed;
      runs with >= 1 promotion, 95% Clopper-Pearson interval, split by the experiment's claim:
      a return/Sharpe claim promoted on a random walk is false by construction; a max_drawdown
      claim (less downside) can be a true risk reduction and is counted apart.
(ii)  power: planted_rsi (optimum oversold 20; PLANTED_STRATEGY starts at 30) at drifts 0.002,
      0.0005, 0.00025, lenient_goals(28, {"sharpe": 2.0}), 52 weekly reviews: share of seeds
      with oversold within 1 of 20 by week 8, 26, 52.
(iii) adaptation: moving_rsi (20 -> 30 half-way), all three policies, one seed, PNG.
(iv)  real data with config/strategy.yaml and config/goals.yaml: BTC/USD hourly in two
      separate periods, the same file resampled to daily candles, and GOOG daily
      (backtesting.test.GOOG; symbol GOOG/USD, timeframe 1d): hermes vs fixed vs reoptimized.

Method and figures: benchmarks/HERMES.md.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from hermes.simulation import simulate  # noqa: E402
from tests.hermes.markets import PLANTED_STRATEGY, lenient_goals, moving_rsi, planted_rsi, random_walk  # noqa: E402
from trader.config import load_strategy_config  # noqa: E402
from trader.goals import load_goals  # noqa: E402
from trader.ohlcv import load_ohlcv  # noqa: E402

REAL_1H = ROOT.parent / "shared" / "data" / "coinbase-btcusd-1h.csv"  # beside the repository; --data FILE
SHIPPED = ROOT / "config" / "strategy.yaml"
SHIPPED_GOALS = ROOT / "config" / "goals.yaml"
PNG = HERE / "hermes_adaptation.png"
WEEKS = 52  # weekly reviews in apply mode after the first, read-only one
PREDICTIVE = ("sharpe", "sortino", "monthly_return", "total_return", "cagr", "win_rate", "profit_factor")
DRIFTS = (0.002, 0.0005, 0.00025)
PLANTED_LEVEL, START_LEVEL = 20.0, 30.0


# ---------------------------------------------------------------- helpers

def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval by bisection on the binomial tails (no scipy here)."""
    if n == 0:
        return 0.0, 1.0
    a = (1 - level) / 2

    def tail_ge(p):  # P(X >= k)
        return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))

    def tail_le(p):  # P(X <= k)
        return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(0, k + 1))

    def solve(f, target, increasing):
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if (f(mid) < target) == increasing:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    lower = 0.0 if k == 0 else solve(tail_ge, a, True)
    upper = 1.0 if k == n else solve(tail_le, a, False)
    return lower, upper


def strategy_file(workdir: Path, text: str | None = None, **changes: Any) -> Path:
    data = yaml.safe_load(text if text is not None else SHIPPED.read_text(encoding="utf-8"))
    data.update(changes)
    path = workdir / "strategy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def warmup_of(path: Path) -> int:
    from hermes.proposer import warmup_needed
    return warmup_needed(load_strategy_config(path))


def summarise(result, **extra) -> dict[str, Any]:
    extra.setdefault("events", ledger_events(result.workdir))
    by_id = {e["id"]: e for e in result.experiments}
    promotions = []
    for c in result.promotions:
        d = c.promoted
        e = by_id.get(d.experiment_id, {})
        ev = d.evidence or {}
        promotions.append(dict(week=c.index, variable=d.variable, value=d.value, baseline=e.get("baseline_value"),
                               claim=e.get("metric"), e_value=ev.get("e_value"), alpha=ev.get("alpha"),
                               challenger=ev.get("challenger"), control=ev.get("control")))
    claims: dict[str, int] = {}
    statuses: dict[str, int] = {}
    for e in result.experiments:
        claims[e["metric"]] = claims.get(e["metric"], 0) + 1
        statuses[e["status"]] = statuses.get(e["status"], 0) + 1
    return dict(cycles=len(result.cycles), experiments=len(result.experiments), claims=claims, statuses=statuses,
                promotions=promotions, breaches=result.breaches, halts=result.halts, metrics=result.metrics(),
                **extra)


def run_sim(frame, path: Path, goals, workdir: Path, policies) -> Any:
    return simulate(frame, path, goals, workdir, policies=policies)


def ledger_events(workdir: Path) -> dict[str, int]:
    """What the ledger recorded, counted: promotions and rollbacks *applied* (also those applied
    at a resume, which SimulationResult.promotions does not list), and halts of each book split
    into review halts (a failing verdict, main book only) and kill-switch halts."""
    import sqlite3

    con = sqlite3.connect(workdir / "ledger.db")
    try:
        rows = con.execute("SELECT book, kind, message FROM events WHERE kind IN "
                           "('promoted', 'rolled_back', 'halted')").fetchall()
    finally:
        con.close()
    out: dict[str, int] = {}
    for book, kind, message in rows:
        if kind == "halted":
            kind = "review_halt" if (message or "").startswith("Hermes:") else "kill_switch_halt"
            key = f"{kind}:{book}"
        else:
            key = f"{kind}_applied"
        out[key] = out.get(key, 0) + 1
    return out


# ---------------------------------------------------------------- tasks (run in worker processes)

def task_random(args) -> dict[str, Any]:
    kind, seed = args
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="bh-rw-") as tmp:
        work = Path(tmp)
        if kind == "1h":
            path = strategy_file(work)
            lookback = 90
            n = warmup_of(path) + (lookback + 7 * (WEEKS + 1) + 1) * 24
            frame = random_walk(n, seed)
        else:
            path = strategy_file(work, timeframe="1d")
            lookback = 365
            n = warmup_of(path) + lookback + 7 * (WEEKS + 1) + 1
            frame = random_walk(n, seed, timeframe="1d", sigma=0.035)
        result = run_sim(frame, path, lenient_goals(lookback), work, ("hermes",))
        return summarise(result, section=f"false_{kind}", seed=seed, seconds=time.time() - t0)


def task_power(args) -> dict[str, Any]:
    drift, seed = args
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="bh-pw-") as tmp:
        work = Path(tmp)
        path = work / "strategy.yaml"
        path.write_text(PLANTED_STRATEGY, encoding="utf-8")
        lookback = 28
        n = warmup_of(path) + (lookback + 7 * (WEEKS + 1) + 1) * 24
        frame = planted_rsi(n, seed, oversold=PLANTED_LEVEL, drift=drift)
        result = run_sim(frame, path, lenient_goals(lookback, {"sharpe": 2.0}), work, ("hermes",))
        return summarise(result, section="power", drift=drift, seed=seed, seconds=time.time() - t0,
                         trajectory=[float(v) for v in result.trajectory("oversold")])


def task_adaptation(args) -> dict[str, Any]:
    seed, drift = args
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="bh-ad-") as tmp:
        work = Path(tmp)
        path = work / "strategy.yaml"
        path.write_text(PLANTED_STRATEGY.replace("oversold: 30", f"oversold: {PLANTED_LEVEL:g}"), encoding="utf-8")
        lookback = 28
        n = warmup_of(path) + (lookback + 7 * (WEEKS + 1) + 1) * 24
        frame = moving_rsi(n, seed, before=20.0, after=30.0, drift=drift)
        result = run_sim(frame, path, lenient_goals(lookback, {"sharpe": 2.0}), work, ("hermes", "fixed", "reoptimized"))
        first = result.first_review
        switch = frame.index[int(n * 0.5)]
        equity = {p: [(t.isoformat(), float(v)) for t, v in s[s.index >= pd.Timestamp(first)].iloc[::6].items()]
                  for p, s in result.equity.items()}
        halves = {"before_switch": {p: _window(result, p, first, switch) for p in result.equity},
                  "after_switch": {p: _window(result, p, switch, None) for p in result.equity}}
        return summarise(result, section="adaptation", seed=seed, drift=drift, seconds=time.time() - t0,
                         switch=switch.isoformat(), first_review=first.isoformat(),
                         cycle_times=[c.time.isoformat() for c in result.cycles],
                         trajectory=[float(v) for v in result.trajectory("oversold")],
                         reoptimized_oversold=[float(r["oversold"]) for r in result.reoptimized],
                         equity=equity, halves=halves)


def _window(result, policy, start, end):
    from hermes.simulation import window_metrics
    s = result.equity[policy]
    if end is not None:
        s = s[s.index < pd.Timestamp(end)]
    return window_metrics(s, start, result.timeframe)


def _real_frames(data: Path) -> dict[str, tuple[pd.DataFrame, dict[str, Any]]]:
    hourly = load_ohlcv(data)
    mid = hourly.index[0] + (hourly.index[-1] - hourly.index[0]) / 2
    daily = hourly.resample("1D").agg({"open": "first", "high": "max", "low": "min", "close": "last",
                                       "volume": "sum"}).dropna()
    daily.index.name = "timestamp"
    from backtesting.test import GOOG
    goog = GOOG.rename(columns=str.lower)[["open", "high", "low", "close", "volume"]].astype(float)
    goog.index = pd.DatetimeIndex(goog.index).tz_localize("UTC")
    goog.index.name = "timestamp"
    return {
        "btc-1h-p1": (hourly[hourly.index < mid], {}),
        "btc-1h-p2": (hourly[hourly.index >= mid], {}),
        "btc-1d": (daily, {"timeframe": "1d"}),
        "goog-1d": (goog, {"timeframe": "1d", "symbol": "GOOG/USD"}),
    }


def task_real(args) -> dict[str, Any]:
    name, data = args
    t0 = time.time()
    frame, changes = _real_frames(Path(data))[name]
    with tempfile.TemporaryDirectory(prefix="bh-real-") as tmp:
        work = Path(tmp)
        path = strategy_file(work, **changes)
        result = run_sim(frame, path, load_goals(SHIPPED_GOALS), work, ("hermes", "fixed", "reoptimized"))
        return summarise(result, section="real", name=name, changes=changes, seconds=time.time() - t0,
                         span=[frame.index[0].isoformat(), frame.index[-1].isoformat()], bars=len(frame),
                         first_review=result.first_review.isoformat(),
                         final_values=result.cycles[-1].values if result.cycles else {})


# ---------------------------------------------------------------- driver

def run_tasks(func, tasks: list, jobs: int, out: Path, deadline: float | None) -> list[dict[str, Any]]:
    """Run tasks in a pool, appending each result to `out` (JSON lines) as it finishes. With a
    deadline (time.time() value), tasks not started by then are skipped."""
    results = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with multiprocessing.get_context("fork").Pool(jobs) as pool, out.open("a") as sink:
        pending = [pool.apply_async(_guarded, (func, t, deadline)) for t in tasks]
        for p in pending:
            r = p.get()
            if r is None:
                continue
            results.append(r)
            sink.write(json.dumps(r, default=str) + "\n")
            sink.flush()
            print(f"  {r.get('section')} {r.get('name', r.get('seed'))} {r.get('drift', '')}: "
                  f"{len(r['promotions'])} promotion(s), {r['experiments']} experiments, {r['seconds']:.0f} s",
                  flush=True)
    return results


def _guarded(func, task, deadline):
    if deadline is not None and time.time() > deadline:
        return None
    return func(task)


def report_false(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    def share(pred):
        k = sum(1 for r in rows if pred(r))
        lo, hi = clopper_pearson(k, n)
        return {"runs": k, "of": n, "rate": k / n if n else 0.0, "ci95": [lo, hi]}
    out = {
        "any": share(lambda r: r["promotions"]),
        "predictive": share(lambda r: any(p["claim"] in PREDICTIVE for p in r["promotions"])),
        "max_drawdown": share(lambda r: any(p["claim"] == "max_drawdown" for p in r["promotions"])),
        "promotions": sum(len(r["promotions"]) for r in rows),
        "experiments": sum(r["experiments"] for r in rows),
        "claims": _add(r["claims"] for r in rows),
        "promoted_claims": _add({p["claim"]: 1} for r in rows for p in r["promotions"]),
        "promoted_variables": _add({f"{p['variable']} ({p['claim']})": 1} for r in rows for p in r["promotions"]),
        "seconds_per_seed": sum(r["seconds"] for r in rows) / n if n else 0.0,
    }
    return out


def _add(dicts) -> dict[str, int]:
    total: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            total[k] = total.get(k, 0) + v
    return total


def report_power(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for drift in sorted({r["drift"] for r in rows}, reverse=True):
        rs = [r for r in rows if r["drift"] == drift]
        row = {"seeds": len(rs)}
        for w in (8, 26, 52):
            # trajectory[k + 1] = the value after cycle k (cycle 0: read-only, at week 0)
            hit = sum(1 for r in rs if any(abs(v - PLANTED_LEVEL) <= 1 for v in r["trajectory"][1:w + 2]))
            at = sum(1 for r in rs if len(r["trajectory"]) > w + 1 and abs(r["trajectory"][w + 1] - PLANTED_LEVEL) <= 1)
            row[f"reached_by_{w}"] = hit
            row[f"there_at_{w}"] = at
            row[f"ci95_by_{w}"] = list(clopper_pearson(hit, len(rs)))
        row["final"] = [r["trajectory"][-1] for r in rs]
        row["promotions"] = [len(r["promotions"]) for r in rs]
        row["wrong_way"] = sum(1 for r in rs for p in r["promotions"] if p["variable"] == "oversold"
                               and abs(p["value"] - PLANTED_LEVEL) > abs(p["baseline"] - PLANTED_LEVEL))
        row["other_variables"] = sum(1 for r in rs for p in r["promotions"] if p["variable"] != "oversold")
        row["seconds_per_seed"] = sum(r["seconds"] for r in rs) / len(rs)
        out[str(drift)] = row
    return out


def plot_adaptation(row: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for policy, points in row["equity"].items():
        times = pd.to_datetime([t for t, _ in points])
        top.plot(times, [v for _, v in points], label=policy)
    switch = pd.Timestamp(row["switch"])
    for ax in (top, bottom):
        ax.axvline(switch, color="grey", ls="--", lw=1)
    top.set_ylabel("equity (paper, USD)")
    top.set_title(f"moving_rsi seed {row['seed']}, drift {row['drift']}: planted oversold 20 -> 30 at the dashed line")
    top.legend()
    times = pd.to_datetime(row["cycle_times"])
    bottom.step(times, row["trajectory"][1:], where="post", label="hermes oversold")
    bottom.step(times, [row["trajectory"][0]] * len(times), where="post", label="fixed oversold")
    if row.get("reoptimized_oversold"):
        bottom.step(times, row["reoptimized_oversold"], where="post", label="reoptimized oversold", alpha=0.6)
    planted = [20.0 if t < switch else 30.0 for t in times]
    bottom.step(times, planted, where="post", color="black", ls=":", label="planted level")
    bottom.set_ylabel("oversold")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--false-hourly", type=int, metavar="SEEDS")
    ap.add_argument("--false-daily", type=int, metavar="SEEDS")
    ap.add_argument("--power", type=int, metavar="SEEDS_PER_DRIFT")
    ap.add_argument("--drifts", type=float, nargs="+", default=list(DRIFTS))
    ap.add_argument("--adaptation", action="store_true")
    ap.add_argument("--adaptation-drift", type=float, default=0.002)
    ap.add_argument("--real", action="store_true")
    ap.add_argument("--data", type=Path, default=REAL_1H)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--deadline", type=float, metavar="MINUTES", help="start no new seed after this wall time")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "bench_hermes")
    ap.add_argument("--png", type=Path, default=PNG)
    ap.add_argument("--weeks", type=int, default=WEEKS, help="weekly reviews in apply mode per run (smoke tests)")
    args = ap.parse_args(argv)
    globals()["WEEKS"] = args.weeks  # read by the tasks (the pool forks after this)
    deadline = time.time() + args.deadline * 60 if args.deadline else None
    summary: dict[str, Any] = {}
    ran = False

    def section(name, func, tasks, reporter):
        nonlocal ran
        ran = True
        t0 = time.time()
        print(f"[{name}] {len(tasks)} run(s), {args.jobs} process(es)", flush=True)
        rows = run_tasks(func, tasks, args.jobs, args.out / f"{name}.jsonl", deadline)
        took = time.time() - t0
        summary[name] = {"wall_seconds": took, "runs": len(rows), **(reporter(rows) if rows else {})}
        print(f"[{name}] took {took:.0f} s ({took / 60:.1f} min) for {len(rows)} run(s)", flush=True)
        print(json.dumps({k: v for k, v in summary[name].items() if k not in ("final",)}, indent=1, default=str),
              flush=True)
        return rows

    seeds = lambda k: range(args.first_seed, args.first_seed + k)  # noqa: E731
    if args.false_daily:
        section("false_daily", task_random, [("1d", s) for s in seeds(args.false_daily)], report_false)
    if args.false_hourly:
        section("false_hourly", task_random, [("1h", s) for s in seeds(args.false_hourly)], report_false)
    if args.power:
        tasks = [(d, s) for s in seeds(args.power) for d in args.drifts]
        section("power", task_power, tasks, report_power)
    if args.adaptation:
        rows = section("adaptation", task_adaptation, [(args.first_seed, args.adaptation_drift)],
                       lambda rows: {"halves": rows[0]["halves"], "trajectory": rows[0]["trajectory"],
                                     "promotions": rows[0]["promotions"], "metrics": rows[0]["metrics"],
                                     "breaches": rows[0]["breaches"], "halts": rows[0]["halts"]})
        if rows:
            plot_adaptation(rows[0], args.png)
            print(f"[adaptation] chart: {args.png}")
    if args.real:
        if not args.data.exists():
            print(f"{args.data}: not found; pass --data FILE (hourly BTC/USD candles)", file=sys.stderr)
            return 2
        names = ["goog-1d", "btc-1h-p1", "btc-1h-p2", "btc-1d"]
        section("real", task_real, [(n, str(args.data)) for n in names],
                lambda rows: {r["name"]: {k: r[k] for k in ("metrics", "breaches", "halts", "promotions", "experiments",
                                                             "span", "bars", "first_review", "cycles",
                                                             "final_values", "seconds", "claims", "statuses")}
                              for r in rows})
    if not ran:
        ap.print_help()
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.out / f"summary-{stamp}.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"summary: {args.out / f'summary-{stamp}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

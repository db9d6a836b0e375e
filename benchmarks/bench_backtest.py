"""Backtester speed: ours vs backtesting.py vs vectorbt, side by side in one process.

    .venv/bin/python benchmarks/bench_backtest.py [--quick] [--no-cold] [--profile] [--data FILE]
    .venv/bin/python benchmarks/bench_backtest.py --commands [--before DIR]   # only the commands' rows
    [BENCH_TREE=DIR] .venv/bin/python benchmarks/bench_backtest.py --sweep    # only the sweep's rows (b, cold)

a. one SMA-crossover backtest (10/30) on 20,000 hourly bars, end to end
   (signal + simulation + metrics): ours vs backtesting.py vs warm vectorbt;
b. a 100-variant sweep (fast 5..50 x slow 60..240) on the same bars: ours vs warm vectorbt,
   plus a stage breakdown of ours, plus cold figures (a fresh `python -c` per run);
c. one backtest on a year of 1-minute bars (525,600, synthetic, fixed seed): ours;
fresh processes of the commands: `trader backtest` beside backtesting.py's fresh process on
   the same CSV, `trader check`, `status`, `halt`, `resume`, `hermes review`.

All engines run the same strategy and the same conventions as tests/trader/test_crosscheck.py
(long while fast SMA > slow SMA, fill at the next open, fee 0.001, all-in, no slippage), and
the script prints their total returns so the timings are known to compare like with like.
See benchmarks/README.md for the figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# the source tree whose trader/strategies are measured: this one, or BENCH_TREE (another
# checkout, for before/after figures by the same script; fresh processes inherit it)
TREE = Path(os.environ.get("BENCH_TREE") or ROOT).resolve()
sys.path.insert(0, str(TREE))  # run as a script from anywhere: import trader/strategies

# the shared candles, beside the repository (../shared/data); --data names another file
REAL_1H = ROOT.parent / "shared" / "data" / "coinbase-btcusd-1h.csv"
N_HOURLY = 20_000
N_MINUTE = 525_600
CASH, FEE = 10_000.0, 0.001
FAST, SLOW = 10, 30
GRID_FAST = list(range(5, 51, 5))  # 5, 10, ..., 50
GRID_SLOW = list(range(60, 241, 20))  # 60, 80, ..., 240: every pair has fast < slow
GRID = [(f, s) for f in GRID_FAST for s in GRID_SLOW]


# -- data -------------------------------------------------------------------------------------


def _load(path: Path) -> pd.DataFrame:
    try:
        from trader.ohlcv import load_ohlcv
    except ImportError:
        return pd.read_csv(path, index_col="timestamp", parse_dates=True)
    return load_ohlcv(path)


def hourly_bars(path: Path = REAL_1H, n: int = N_HOURLY) -> pd.DataFrame:
    """The real hourly bars, continued to `n` by replaying them from the start.

    The replayed bars are scaled by last close / first open so prices continue from the last
    real close (returns and ranges are the real ones), and their timestamps continue hourly.
    With the 13,165-bar file: 13,165 real + the first 6,835 again.
    """
    real = _load(path)
    parts, have = [real], len(real)
    while have < n:
        take = real.iloc[: n - have].copy()
        scale = parts[-1]["close"].iloc[-1] / take["open"].iloc[0]
        take[["open", "high", "low", "close"]] *= scale
        take.index = parts[-1].index[-1] + pd.Timedelta(hours=1) * np.arange(1, len(take) + 1)
        parts.append(take)
        have += len(take)
    out = pd.concat(parts)
    out.index.name = "timestamp"
    return out


def minute_bars(n: int = N_MINUTE, seed: int = 20240101) -> pd.DataFrame:
    """A year of synthetic 1-minute bars: a log-normal random walk (about 0.08% per minute,
    roughly BTC's volatility) with open = previous close and random wicks."""
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0008, n)))
    open_ = np.concatenate([[30_000.0], close[:-1]])
    wick = np.abs(rng.normal(0.0, 0.0004, (2, n)))
    index = pd.date_range("2023-01-01", periods=n, freq="1min", tz="UTC", name="timestamp")
    return pd.DataFrame({
        "open": open_,
        "high": np.maximum(open_, close) * (1 + wick[0]),
        "low": np.minimum(open_, close) * (1 - wick[1]),
        "close": close,
        "volume": rng.gamma(2.0, 5.0, n),
    }, index=index)


# -- the three engines ------------------------------------------------------------------------


def naive(df: pd.DataFrame) -> pd.DataFrame:
    """The frame with a tz-naive (UTC) index: the reference engines' fast input.

    vectorbt wraps every output around the index, and with pandas 3 `np.array()` of a
    tz-aware index builds one Timestamp object per bar (plus the GC pauses that follow):
    225 ms instead of 16 ms for one 20k-bar backtest. Both reference engines get this form,
    prepared outside the timed region; ours keeps the canonical tz-aware frame.
    """
    return df.tz_localize(None)


def our_config(fast: int = FAST, slow: int = SLOW, timeframe: str = "1h"):
    from trader.config import parse_strategy_config

    return parse_strategy_config({
        "name": "bench", "exchange": "coinbase", "symbol": "BTC/USD", "timeframe": timeframe,
        "capital": CASH, "strategy": "ma_cross",
        "params": {"fast": fast, "slow": slow, "kind": "sma"},
        "risk": {"stake_fraction": 1.0, "stop_loss": None, "take_profit": None,
                 "fee": FEE, "slippage": 0.0},
    }, source="<bench>")


def ours_single(df, config) -> float:
    from trader.backtest import run_backtest

    return run_backtest(df, config).metrics.total_return


def ours_variants():
    # `sweep` applies a variant's changes one at a time and validates each step, so slow is
    # set before fast: {"fast": 50} first would meet the base's slow=50 and be refused.
    return [{"slow": s, "fast": f} for f, s in GRID]


def ours_sweep(df, base, variants) -> np.ndarray:
    from trader.backtest import sweep

    return sweep(df, base, variants)["total_return"].to_numpy()


def bt_prepare(df):
    """backtesting.py's frame and strategy (building them is not timed; running is)."""
    import backtesting.backtesting
    from backtesting import Strategy

    # its tqdm progress bar only prints to stderr; switching it off only helps it
    backtesting.backtesting._tqdm = lambda seq, **_: seq

    class SmaCross(Strategy):
        fast, slow = FAST, SLOW

        def init(self):
            # plain arrays, not self.I: with self.I, next() would start one bar after the
            # slow SMA exists and could enter one bar late (see test_crosscheck.py)
            close = pd.Series(self.data.Close)
            self.want = (close.rolling(self.fast).mean() > close.rolling(self.slow).mean()).to_numpy()

        def next(self):
            i = len(self.data) - 1
            if self.want[i] and not self.position:
                self.buy()
            elif not self.want[i] and self.position:
                self.position.close()

    return naive(df).rename(columns=str.capitalize), SmaCross


def bt_single(data, strategy) -> float:
    from backtesting.lib import FractionalBacktest

    bt = FractionalBacktest(data, strategy, cash=CASH, commission=FEE, trade_on_close=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "trades remain open at the end": intended
        stats = bt.run()
    return stats["Equity Final [$]"] / CASH - 1.0


def _vbt_portfolio(df, fast, slow):
    import vectorbt as vbt

    close = df["close"]
    above = vbt.MA.run(close, fast, short_name="fast").ma_above(vbt.MA.run(close, slow, short_name="slow"))
    held = above.shift(1, fill_value=False)  # from_signals fills on the signal's bar: t+1's open
    return vbt.Portfolio.from_signals(close, entries=held, exits=~held, price=df["open"],
                                      size=np.inf, fees=FEE, init_cash=CASH, freq="1h")


def vbt_single(df) -> float:
    return float(_vbt_portfolio(df, FAST, SLOW).total_return())


def vbt_sweep(df) -> np.ndarray:
    # one MA.run per side with the 100 window combinations; from_signals on 100 columns at once
    fast, slow = zip(*GRID)
    return _vbt_portfolio(df, list(fast), list(slow)).total_return().to_numpy()


# -- timing -----------------------------------------------------------------------------------


def timed(fn, repeats: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def interleaved(fns: dict, repeats: int, every: int = 1, warmup: int = 2) -> dict[str, list[float]]:
    """Time several functions in turns (`repeats` turns; the first runs `every` times a turn,
    the others once): on a shared machine a burst of load then hits all of them alike, not
    one engine's window."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            for _ in range(every if name == next(iter(fns)) else 1):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return times


# The child processes: interpreter start + imports + data + one run, nothing else warm.
CHILD = """
import time
import sys; sys.path.insert(0, {here!r})
import bench_backtest as b
df = b.hourly_bars(b.Path({data!r}))
{work}
"""
COLD_WORK = {
    "ours single": "b.ours_single(df, b.our_config())",
    "ours sweep": "b.ours_sweep(df, b.our_config(20, 50), b.ours_variants())",
    "backtesting.py single": "b.bt_single(*b.bt_prepare(df))",
    "vectorbt single": "b.vbt_single(b.naive(df))",
    "vectorbt sweep": "b.vbt_sweep(b.naive(df))",
}


def cold(work: str, repeats: int, empty_cache: bool, data: Path = REAL_1H) -> list[float]:
    """Wall time of fresh interpreters (as a user sees it), median-able."""
    code = CHILD.format(here=str(HERE), work=work, data=str(data))
    times = []
    for _ in range(repeats):
        env = dict(os.environ)
        with tempfile.TemporaryDirectory() as cache_dir:
            if empty_cache:  # numba compiles everything again, as on a first install
                env["NUMBA_CACHE_DIR"] = cache_dir
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
    return times


# -- fresh processes of the commands users type ---------------------------------------------

# backtesting.py's equivalent of `trader backtest --json`: read the CSV, run, print the return
BT_CHILD = """
import warnings
import pandas as pd
import backtesting.backtesting
from backtesting import Strategy
from backtesting.lib import FractionalBacktest
backtesting.backtesting._tqdm = lambda seq, **_: seq
class SmaCross(Strategy):
    def init(self):
        close = pd.Series(self.data.Close)
        self.want = (close.rolling({fast}).mean() > close.rolling({slow}).mean()).to_numpy()
    def next(self):
        i = len(self.data) - 1
        if self.want[i] and not self.position:
            self.buy()
        elif not self.want[i] and self.position:
            self.position.close()
df = pd.read_csv({csv!r}, index_col="timestamp", parse_dates=True).tz_localize(None)
df = df.rename(columns=str.capitalize)
bt = FractionalBacktest(df, SmaCross, cash={cash}, commission={fee}, trade_on_close=False)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    print(bt.run()["Equity Final [$]"] / {cash} - 1.0)
"""

BENCH_STRATEGY = f"""name: bench
exchange: coinbase
symbol: BTC/USD
timeframe: 1h
capital: {CASH}
strategy: ma_cross
params: {{fast: {FAST}, slow: {SLOW}, kind: sma}}
risk: {{stake_fraction: 1.0, stop_loss: null, take_profit: null, fee: {FEE}, slippage: 0.0}}
"""


def _command(name: str) -> list[str]:
    """The console script a user runs (`trader`, `hermes`), from this interpreter's venv."""
    script = Path(sys.executable).with_name(name)
    return [str(script)] if script.exists() else [sys.executable, "-m", f"{name}.cli"]


def _wall(argv: list[str], env: dict, cwd: Path, before=None) -> tuple[float, str]:
    seconds, stdout, _ = _timed(argv, env, cwd, before)
    return seconds, stdout


def _timed(argv: list[str], env: dict, cwd: Path, before=None) -> tuple[float, str, float]:
    """Wall time, stdout and CPU time (user + sys) of one fresh process: its CPU time moves
    less than its wall time with the machine's load."""
    import resource

    if before is not None:
        before()
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return seconds, out.stdout, (after.ru_utime - used.ru_utime) + (after.ru_stime - used.ru_stime)


def command_rows(df: pd.DataFrame, repeats: int, trees: dict[str, Path | None]) -> list[tuple[str, str, list[float]]]:
    """Wall time of fresh processes of `trader backtest` (beside backtesting.py's fresh
    process doing the same), `trader check`, `status`, `halt`, `resume` and `hermes review`.

    The ledger is a `trader demo --weeks 2` one (7 fills, 2 reviews); each `hermes review`
    runs on a fresh copy of it, as of the week after (`--now`), on the demo's candles. `trees`
    names the source trees to run (None: the installed one); another is put first on
    PYTHONPATH (a checkout of an earlier commit, for before/after figures in one run).
    Runs are interleaved (ours, peer, ours, ...) so that the machine's load hits both alike."""
    import gzip
    import shutil

    rows: list[tuple[str, str, list[float]]] = []
    work = Path(tempfile.mkdtemp(prefix="bench-commands-"))
    try:
        csv = work / "bars.csv"
        df.to_csv(csv, index_label="timestamp", date_format="%Y-%m-%dT%H:%M:%SZ")
        strategy = work / "strategy.yaml"
        strategy.write_text(BENCH_STRATEGY)
        demo_csv = work / "demo.csv"
        demo_csv.write_bytes(gzip.decompress((ROOT / "trader" / "demo" / "btcusd-1h.csv.gz").read_bytes()))
        demo = work / "demo"
        base_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ANTHROPIC_API_KEY")}
        subprocess.run(_command("trader") + ["demo", "--weeks", "2", "--speed", "max", "--dir", str(demo)],
                       check=True, env=base_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        copy = work / "copy"

        def fresh_copy():
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(demo, copy)

        fresh_copy()
        ledger_env = {**base_env, "TRADER_DATA_DIR": str(copy), "TRADER_CONFIG_DIR": str(copy / "config")}
        trader, hermes = _command("trader"), _command("hermes")
        commands = {
            "trader backtest --json (20k 1h bars)": (trader + ["backtest", "--config", str(strategy), "--data", str(csv), "--json"], None),
            "trader check": (trader + ["check", "--config", str(strategy)], None),
            "trader status": (trader + ["status"], None),
            "trader halt": (trader + ["halt", "--reason", "bench"], None),
            "trader resume --keep": (trader + ["resume", "--keep"], None),
            "hermes review (demo ledger, 2 weeks)": (hermes + ["review", "--data", str(demo_csv), "--now", "2017-08-28T06:00"], fresh_copy),
        }
        peer = [sys.executable, "-c", BT_CHILD.format(csv=str(csv), fast=FAST, slow=SLOW, cash=CASH, fee=FEE)]
        times: dict[tuple[str, str], list[float]] = {}
        returns: dict[str, float] = {}
        for _ in range(repeats):
            for tree_name, tree in trees.items():
                env = dict(ledger_env)
                if tree is not None:
                    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
                for name, (argv, before) in commands.items():
                    seconds, out, cpu = _timed(argv, env, ROOT, before)
                    times.setdefault((name, tree_name), []).append(seconds)
                    if name.startswith(("trader status", "trader halt", "trader resume")):
                        times.setdefault((f"{name}, CPU (user + sys)", tree_name), []).append(cpu)
                    if name.startswith("trader backtest"):
                        returns[f"ours ({tree_name})"] = json.loads(out)["total_return"]
            seconds, out = _wall(peer, base_env, ROOT)
            times.setdefault(("trader backtest --json (20k 1h bars)", "backtesting.py, same CSV"), []).append(seconds)
            returns["backtesting.py"] = float(out)
        print("same result? fresh-process backtests, total return " + ", ".join(f"{k} {v:.12g}" for k, v in returns.items()))
        for (name, engine), seconds in times.items():
            rows.append((f"fresh process: {name}", engine, seconds))
        rows.append(("fresh process: baseline", "python -c pass", [_wall([sys.executable, "-c", "pass"], base_env, ROOT)[0]
                                                                 for _ in range(repeats)]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    order = {name: i for i, name in enumerate(dict.fromkeys(r[0] for r in rows))}
    return sorted(rows, key=lambda r: order[r[0]])


def sweep_rows(df, rep: dict) -> list[tuple[str, str, list[float]]]:
    """(b): ours and warm vectorbt in turns, two of ours per vectorbt run: ours takes about
    20 ms, so timed alone, a second of load from other jobs could fall on its window only."""
    base, variants = our_config(20, 50), ours_variants()
    ours_tr = ours_sweep(df, base, variants)
    engines = {"ours": lambda: ours_sweep(df, base, variants)}
    try:
        import vectorbt  # noqa: F401
    except ImportError:
        print("vectorbt not installed (pip install -e .[bench]): its figures are skipped")
    else:
        vdf = naive(df)
        vbt_tr = vbt_sweep(vdf)
        print(f"same result? sweep total returns, largest relative difference ours/vectorbt: "
              f"{np.max(np.abs(ours_tr / vbt_tr - 1)):.1e}")
        engines["vectorbt (warm)"] = lambda: vbt_sweep(vdf)
    times = interleaved(engines, rep["vbt"], every=2)
    return [("b. 100-variant sweep, 20k 1h bars", name, runs) for name, runs in times.items()]


def cold_sweep_rows(rep: dict, data: Path) -> list[tuple[str, str, list[float]]]:
    """The cold sweep, ours and vectorbt's fresh processes in turns (numba caches warm), and
    the floor every one of them pays: `import numpy, pandas`."""
    import importlib.util

    names = ["ours sweep"] + (["vectorbt sweep"] if importlib.util.find_spec("vectorbt") else [])
    times: dict[str, list[float]] = {name: [] for name in names}
    times["python -c 'import numpy, pandas'"] = []
    for _ in range(max(rep["cold"], 5)):
        for name in names:
            times[name] += cold(COLD_WORK[name], 1, False, data)
        times["python -c 'import numpy, pandas'"] += _baseline(1)
    return [("cold: python -c, import+load+run, numba cache warm", name, runs) for name, runs in times.items()]


def sweep_breakdown(df, base, variants, repeats: int) -> dict[str, float]:
    """Time each stage of `trader.backtest.sweep` for all 100 variants, stage by stage.

    Mirrors trader/backtest/run.py (`sweep` and `_run_many`: same public pieces, same order),
    so the stages add up to about the sweep's own time.
    """
    from strategies import indicators
    from trader.backtest import kernel, rolling
    from trader.backtest.result import Metrics
    from trader.backtest.run import _Prices

    prices = _Prices(df, base.timeframe)
    strategy = base.strategy_def()
    k = len(variants)
    lanes = np.empty((prices.n, kernel.LANES))
    stages: dict[str, list[float]] = {}

    def stage(name, fn):
        stages.setdefault(name, []).append(_clock(fn))

    for _ in range(repeats + 1):  # the first round is a warm-up, dropped below
        configs: list = []
        targets = np.empty((k, prices.n))
        counts, stats = np.empty((k, 6)), np.empty((k, 5))
        stage("configs: with_values (pydantic re-validation)", lambda: configs.extend(base.with_values(v) for v in variants))
        stage("version hash (json + sha256)", lambda: [c.version for c in configs])

        def signals():
            with indicators.memo():
                stage("  of which the 20 moving averages in one pass (share_means)",
                      lambda: rolling.share_means(df, strategy, configs))
                for i, c in enumerate(configs):
                    strategy.exposure(df, c.params, out=targets[i])

        stage("signals: 20 moving averages (one pass) + 100 compares", signals)
        settings = [np.full(k, v) for v in (1.0, FEE, 0.0, 0.0, 0.0, CASH)]
        stage("numba kernel: simulate_many (simulate + equity_stats)", lambda: kernel.simulate_many(
            prices.open, prices.high, prices.low, prices.close, targets, *settings, prices.bars_per_year,
            lanes, np.empty((0, prices.n)), counts, stats))

        def metrics():
            rows = [{"version": c.version, **v, **Metrics.from_run(tuple(s[:4]), (int(n[0]), int(n[1]), int(n[2]), n[3], n[4], int(n[5])),
                                                                    s[4], prices.n, prices.span).to_dict()}
                    for c, v, s, n in zip(configs, variants, stats.tolist(), counts.tolist())]
            pd.DataFrame(rows)

        stage("Metrics + rows + DataFrame", metrics)

    # equity_stats one curve at a time, for comparison with the kernel's side-by-side form
    equity = np.empty(prices.n)
    kernel.simulate(prices.open, prices.high, prices.low, prices.close, targets[0], 1.0, FEE, 0.0, 0.0, 0.0, CASH,
                    equity, np.empty((0, len(kernel.FILL_FIELDS))))
    stages["  (equity_stats one curve at a time, x100)"] = timed(
        lambda: [kernel.equity_stats(equity, CASH, prices.bars_per_year) for _ in variants], repeats, 1)
    return {name: statistics.median(times[1:] if not name.startswith("  ") else times)
            for name, times in stages.items()}


def _clock(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def single_breakdown(df, config, repeats: int) -> dict[str, float]:
    """Where one `run_backtest` goes: signal, kernels, and turning the kernel's fills into columns."""
    from trader.backtest import kernel, run_backtest
    from trader.backtest.run import _Prices, _simulate

    prices = _Prices(df, config.timeframe)
    strategy = config.strategy_def()
    target = strategy.exposure(df, config.params)
    equity = np.empty(prices.n)
    fills = np.empty((2 * prices.n + 1, len(kernel.FILL_FIELDS)))
    total = statistics.median(timed(lambda: run_backtest(df, config), repeats))
    signal = statistics.median(timed(lambda: strategy.exposure(df, config.params), repeats))
    kernels = statistics.median(timed(lambda: _simulate(prices, config, target, equity, fills), repeats))
    prep = statistics.median(timed(lambda: _Prices(df, config.timeframe), repeats))
    return {
        "run_backtest total": total,
        "signal (2 pandas rolling means + compare)": signal,
        "kernels + Metrics": kernels,
        "price arrays": prep,
        "rest: fills as columns, equity Series, result": total - signal - kernels - prep,
    }


# -- report -----------------------------------------------------------------------------------


def fmt(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1e3:9.2f} ms"
    return f"{seconds * 1e3:9.1f} ms" if seconds < 10 else f"{seconds:9.2f} s "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (about a minute)")
    parser.add_argument("--no-cold", action="store_true", help="skip the subprocess figures")
    parser.add_argument("--profile", action="store_true", help="also cProfile one sweep")
    parser.add_argument("--commands", action="store_true",
                        help="only the fresh-process figures of the commands (trader backtest/check/status/..., hermes review)")
    parser.add_argument("--sweep", action="store_true",
                        help="only the sweep's rows: in process and fresh processes, ours and vectorbt in turns "
                             "(BENCH_TREE=DIR measures another source tree's sweep)")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="also run the commands from this source tree (a checkout of an earlier commit)")
    parser.add_argument("--data", type=Path, default=REAL_1H,
                        help="the real hourly candles (default: ../shared/data/coinbase-btcusd-1h.csv beside the repository)")
    args = parser.parse_args()
    if not args.data.is_file():
        parser.exit(2, f"error: --data: no file {args.data}; pass the hourly BTC/USD candles with --data FILE\n")
    q = args.quick
    rep = {"ours": 7 if q else 20, "bt": 3 if q else 7, "vbt": 3 if q else 9,
           "sweep": 5 if q else 15, "minute": 3 if q else 9, "cold": 1 if q else 3, "commands": 3 if q else 7}
    trees = {"ours": None, **({"before": args.before.resolve()} if args.before else {})}

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus; medians of n runs after warm-ups")
    df = hourly_bars(args.data)
    minutes = minute_bars()
    print(f"hourly bars: {len(df):,} ({df.index[0]} .. {df.index[-1]}); minute bars: {len(minutes):,}")
    if args.commands:
        print_table(command_rows(df, rep["commands"], trees))
        return
    if args.sweep:
        print(f"source tree: {TREE}")
        rows = sweep_rows(df, rep)
        if not args.no_cold:
            rows += cold_sweep_rows(rep, args.data)
        print_table(rows)
        return
    rows: list[tuple[str, str, list[float]]] = []  # (section, engine, times)
    check: dict[str, float] = {}

    # a. one backtest, 20k hourly bars -------------------------------------------------------
    config = our_config()
    check["ours"] = ours_single(df, config)
    rows.append(("a. 1 backtest, 20k 1h bars", "ours", timed(lambda: ours_single(df, config), rep["ours"])))
    data, strategy = bt_prepare(df)
    check["backtesting.py"] = bt_single(data, strategy)
    rows.append(("a. 1 backtest, 20k 1h bars", "backtesting.py", timed(lambda: bt_single(data, strategy), rep["bt"], 1)))
    have_vbt = True
    try:
        import vectorbt  # noqa: F401
    except ImportError:
        have_vbt = False
        print("vectorbt not installed (pip install -e .[bench]): its figures are skipped")
    if have_vbt:
        vdf = naive(df)
        check["vectorbt"] = vbt_single(vdf)
        rows.append(("a. 1 backtest, 20k 1h bars", "vectorbt (warm)", timed(lambda: vbt_single(vdf), rep["vbt"])))
    print("same result? total return " + ", ".join(f"{k} {v:.12g}" for k, v in check.items()))

    # b. 100-variant sweep -------------------------------------------------------------------
    base, variants = our_config(20, 50), ours_variants()
    rows += sweep_rows(df, rep)

    # c. a year of minutes -------------------------------------------------------------------
    mconfig = our_config(timeframe="1m")
    rows.append(("c. 1 backtest, 525,600 1m bars", "ours", timed(lambda: ours_single(minutes, mconfig), rep["minute"])))
    from trader.backtest import run_backtest
    print(f"minute year: {run_backtest(minutes, mconfig).metrics.trades:,} closed trades")

    # cold: fresh interpreters ---------------------------------------------------------------
    if not args.no_cold:
        for name, work in COLD_WORK.items():
            if "vectorbt" in name and not have_vbt:
                continue
            rows.append(("cold: python -c, import+load+run, numba cache warm", name, cold(work, rep["cold"], False, args.data)))
        for name in ("ours single", "ours sweep", "vectorbt sweep"):
            if "vectorbt" in name and not have_vbt:
                continue
            rows.append(("cold: same, empty numba cache (first run)", name, cold(COLD_WORK[name], 1, True, args.data)))
        rows.append(("cold: baseline", "python -c 'import numpy, pandas'",
                     _baseline(rep["cold"])))
        rows += command_rows(df, rep["commands"], trees)

    print_table(rows)

    print("\nour sweep, by stage (100 variants, medians):")
    for name, seconds in sweep_breakdown(df, base, variants, rep["sweep"]).items():
        print(f"  {name:<58} {fmt(seconds)}")
    print("\none run_backtest on 20k bars, by stage (medians):")
    for name, seconds in single_breakdown(df, config, rep["ours"]).items():
        print(f"  {name:<58} {fmt(seconds)}")
    print("\none run_backtest on the minute year, by stage (medians):")
    for name, seconds in single_breakdown(minutes, mconfig, rep["minute"]).items():
        print(f"  {name:<58} {fmt(seconds)}")

    if args.profile:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.runcall(ours_sweep, df, base, variants)
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue())


def print_table(rows: list[tuple[str, str, list[float]]]) -> None:
    print()
    print(f"{'benchmark':<60} {'engine':<34} {'median':>12} {'min':>12} {'n':>3}  vs ours")
    ours_median: dict[str, float] = {}
    for section, engine, times in rows:
        med = statistics.median(times)
        key = section + ("sweep" if "sweep" in engine else "single")
        if engine.startswith("ours"):
            ours_median[key] = med
        ref = ours_median.get(key)
        ratio = f"{med / ref:7.1f}x" if ref and not engine.startswith("ours") else ""
        print(f"{section:<60} {engine:<34} {fmt(med):>12} {fmt(min(times)):>12} {len(times):>3}  {ratio}")


def _baseline(repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import numpy, pandas"], check=True)
        times.append(time.perf_counter() - start)
    return times


if __name__ == "__main__":
    main()

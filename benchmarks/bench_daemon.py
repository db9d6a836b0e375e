"""The daemon's engine: replay throughput and memory, the tick's own overhead, CLI start-up.

    .venv/bin/python benchmarks/bench_daemon.py            # 50,000 one-minute ticks
    .venv/bin/python benchmarks/bench_daemon.py --full     # a year: 525,600 ticks (a few minutes)
    .venv/bin/python benchmarks/bench_daemon.py --ticks 20000 --runs 5 --before DIR   # medians, beside another tree

The replay runs in a fresh subprocess (so its peak RSS is its own): the very engine the daemon
runs, paper broker, SQLite ledger in a temporary directory, committed every 1,000 ticks as
`trader run --replay` does (`trader.ledger.replay`). The candles are a seeded random walk
(the same generator as bench_backtest.py's minute year).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd
from trader.brokers import PaperBroker
from trader.config import parse_strategy_config, load_strategy_config
from trader.runoptions import lookback_for
from trader.engine import Engine
from trader.feeds import ReplayFeed
from trader.ledger import open_ledger
from trader.ledger.replay import GroupCommit

n = int(sys.argv[1])
rng = np.random.default_rng(20240101)
close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
open_ = np.concatenate([[30_000.0], close[:-1]])
wick = np.abs(rng.normal(0, 0.0004, (2, n)))
frame = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * (1 + wick[0]),
                      "low": np.minimum(open_, close) * (1 - wick[1]), "close": close, "volume": 1.0},
                     index=pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC", name="timestamp"))
del close, open_, wick  # the generator's arrays are not the replay's: only the frame stays
data = load_strategy_config(sys.argv[2]).to_dict()
data.update(exchange="binance", symbol="BTC/USDT", timeframe="1m")
config = parse_strategy_config(data, "<bench>")
db = Path(tempfile.mkdtemp()) / "bench.db"
ledger = open_ledger(f"sqlite:///{db}")
group = GroupCommit(ledger)  # as `trader run --replay` does
engine = Engine(config=config, goals=None, sessions=group.sessions, broker=PaperBroker("USDT"))
latencies = np.empty(n)  # not a list: 500,000 Python floats would add 16 MB to the RSS measured
started, cpu = time.perf_counter(), time.process_time()
for i, view in enumerate(ReplayFeed(frame, lookback_for(config)).views()):
    t = time.perf_counter()
    engine.tick(view, now=view.next_time)
    group.tick_done()
    latencies[i] = time.perf_counter() - t
group.close()
ledger.dispose()  # checkpoints the WAL into the file measured below
elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
latencies.sort()
print(json.dumps({
    "ticks": n, "seconds": elapsed, "ticks_per_second": n / elapsed, "cpu_ticks_per_second": n / cpu,
    "p50_us": float(latencies[n // 2]) * 1e6, "p99_us": float(latencies[int(n * 0.99)]) * 1e6,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "db_mb": db.stat().st_size / 2**20,
}))
"""

BREAKDOWN = r"""
import os, statistics, tempfile, time
from datetime import datetime, timezone, timedelta
from pathlib import Path
import numpy as np, pandas as pd
from sqlalchemy import select, insert
from trader.config import load_strategy_config
from trader.runoptions import lookback_for
from trader.ledger import hot
from trader.feeds import ReplayFeed
from trader.ledger import open_ledger, sessions, store
from trader.ledger.models import DaemonState, EquityPoint, StrategyVersion
from trader.ledger.replay import GroupCommit
cfg = load_strategy_config(os.environ["CFG"])
engine = open_ledger(f"sqlite:///{Path(tempfile.mkdtemp()) / 'b.db'}")
with sessions(engine).begin() as s:
    s.add(StrategyVersion(version="v", name="n", strategy="x", settings={}))
    s.add(DaemonState(book="main", state="running", mode="paper", peak_equity=0.0))
t0 = datetime(2020, 1, 1, tzinfo=timezone.utc)
def med(fn, n=2000):
    out = []
    for i in range(n):
        a = time.perf_counter(); fn(i); out.append(time.perf_counter() - a)
    return statistics.median(out) * 1e6
k = iter(range(10**7))  # a fresh bar time for every call of every variant
def tick_writes(s, st):
    def run(_):  # the engine's calls (Engine._tick, Engine.tick)
        t = t0 + timedelta(minutes=next(k))
        hot.state_columns(hot.connection_of(s), "main")
        store.record_equity(s, book="main", time=t, equity=1.0, cash=1.0, qty=0.0, price=1.0, target=0.0, strategy_version="v")
        store.mark_tick(s, st, peak_equity=1.0, last_bar_time=t, last_tick_at=t, strategy_version="v")
        hot.end_tick(s)
    return run
s = sessions(engine)(); st = s.get(DaemonState, "main")
def orm(_):  # how the engine wrote them before: ORM statement, ORM bulk insert, unit of work
    t = t0 + timedelta(minutes=next(k))
    s.execute(select(DaemonState.state, DaemonState.reason, DaemonState.peak_equity).where(DaemonState.book == "main")).one()
    st.last_tick_at = st.last_bar_time = t; st.peak_equity = 2.0 + next(k)
    s.execute(insert(EquityPoint), [dict(book="main", time=t, equity=1.0, cash=1.0, position_qty=0.0, price=1.0, target=0.0, strategy_version="v")])
    s.commit(); s.commit()
print(f"  the tick's ledger work (read state, insert equity point, update state, commit):")
print(f"    as the engine did it before (ORM statements and unit of work, two commits): {med(orm):4.0f} us")
print(f"    as it does now (prepared statements on the DBAPI connection), a commit per tick:          {med(tick_writes(s, st)):4.0f} us")
s.close()
group = GroupCommit(engine)
s = group.sessions(); st = s.get(DaemonState, "main")
print(f"    the same in a replay, committed every 1,000 ticks (no session transaction):   {med(tick_writes(s, st)):4.0f} us")
s.close(); group.close()
raw = engine.raw_connection()
def rawf(_):
    t = (t0 + timedelta(minutes=next(k))).replace(tzinfo=None)
    c = raw.cursor()
    c.execute("select state, reason, peak_equity from daemon_state where book='main'").fetchone()
    c.execute("insert into equity_points (book,time,equity,cash,position_qty,price,target,strategy_version) values ('main',?,1,1,0,1,0,'v')", (t,))
    c.execute("update daemon_state set peak_equity=?, last_bar_time=?, last_tick_at=?, strategy_version='v' where book='main'", (1.0, t, t))
    raw.commit()
print(f"    the same statements on the raw sqlite3 connection, a commit each:            {med(rawf):4.0f} us")
n = 5000
close = 30_000 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.0008, n)))
frame = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0},
                     index=pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC", name="timestamp"))
views = iter(ReplayFeed(frame, lookback_for(cfg)).views(1000))
window = next(views).bars
strat = cfg.strategy_def()
print(f"  the strategy on its {len(window)}-bar window ({cfg.strategy}):                                {med(lambda i: strat.latest(window, cfg.params), 1000):4.0f} us")
print(f"  building the tick's view of the candles (ReplayFeed):                          {med(lambda i: next(views), 3000):4.0f} us")
"""


def replay(py: str, ticks: int, cfg: str, tree: Path | None) -> dict:
    """One replay in a fresh process; `tree`: another source tree, first on PYTHONPATH."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    out = subprocess.run([py, "-c", CHILD, str(ticks), cfg], capture_output=True, text=True, check=True,
                         cwd=tree or ROOT, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="a whole year of minutes (525,600 ticks)")
    parser.add_argument("--ticks", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=1, help="replays per tree; medians are printed")
    parser.add_argument("--before", type=Path, help="also replay with this source tree (an earlier checkout), interleaved")
    args = parser.parse_args()
    ticks = 525_600 if args.full else args.ticks
    cfg = str(ROOT / "config" / "strategy.yaml")
    py = sys.executable

    print(f"replay: {ticks:,} one-minute ticks through the engine (paper broker, SQLite ledger), "
          f"{args.runs} run(s) per tree, interleaved; medians")
    trees = {"this tree": None, **({f"before ({args.before})": args.before.resolve()} if args.before else {})}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    for _ in range(args.runs):
        for name, tree in trees.items():
            runs[name].append(replay(py, ticks, cfg, tree))
    for name, rs in runs.items():
        m = {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        cpu = ", ".join(f"{r['cpu_ticks_per_second']:,.0f}" for r in rs)
        print(f"  {name}: {m['cpu_ticks_per_second']:,.0f} ticks per CPU second ({cpu}); {m['ticks_per_second']:,.0f} ticks/s wall "
              f"({m['seconds']:.1f} s), tick p50 {m['p50_us']:.0f} us, p99 {m['p99_us']:.0f} us, peak RSS {m['peak_rss_mb']:.0f} MB, "
              f"ledger {m['db_mb']:.1f} MB")
    print("  aims: >= 5,000 ticks per CPU second, < 250 MB")

    print("where a tick's time goes (medians):")
    subprocess.run([py, "-c", BREAKDOWN], check=True, cwd=ROOT, env={**os.environ, "CFG": cfg})

    print("start-up: `trader --help` vs `python -c pass` (median of 10 fresh processes)")
    for label, cmd in (("trader --help", [py, "-m", "trader.cli", "--help"]), ("python -c pass", [py, "-c", "pass"])):
        times = []
        for _ in range(10):
            t = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True, cwd=ROOT)
            times.append(time.perf_counter() - t)
        print(f"  {label:16s} {statistics.median(times) * 1000:6.0f} ms")
    print("  aim: trader --help under 500 ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

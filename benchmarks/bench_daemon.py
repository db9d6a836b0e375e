"""The daemon's engine: replay throughput and memory, the tick's own overhead, CLI start-up.

    .venv/bin/python benchmarks/bench_daemon.py            # 50,000 one-minute ticks
    .venv/bin/python benchmarks/bench_daemon.py --full     # a year: 525,600 ticks (about 12 min)

The replay runs in a fresh subprocess (so its peak RSS is its own): the very engine the daemon
runs, paper broker, SQLite ledger in a temporary directory, one transaction per tick. The
candles are a seeded random walk (the same generator as bench_backtest.py's minute year).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd
from trader.brokers import PaperBroker
from trader.config import parse_strategy_config, load_strategy_config
from trader.daemon import lookback_for
from trader.engine import Engine
from trader.feeds import ReplayFeed
from trader.ledger import open_ledger, sessions

n = int(sys.argv[1])
rng = np.random.default_rng(20240101)
close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
open_ = np.concatenate([[30_000.0], close[:-1]])
wick = np.abs(rng.normal(0, 0.0004, (2, n)))
frame = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * (1 + wick[0]),
                      "low": np.minimum(open_, close) * (1 - wick[1]), "close": close, "volume": 1.0},
                     index=pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC", name="timestamp"))
data = load_strategy_config(sys.argv[2]).to_dict()
data.update(exchange="binance", symbol="BTC/USDT", timeframe="1m")
config = parse_strategy_config(data, "<bench>")
db = Path(tempfile.mkdtemp()) / "bench.db"
engine = Engine(config=config, goals=None, sessions=sessions(open_ledger(f"sqlite:///{db}")), broker=PaperBroker("USDT"))
latencies = []
started = time.perf_counter()
for view in ReplayFeed(frame, lookback_for(config)).views():
    t = time.perf_counter()
    engine.tick(view, now=view.next_time)
    latencies.append(time.perf_counter() - t)
elapsed = time.perf_counter() - started
latencies.sort()
print(json.dumps({
    "ticks": n, "seconds": elapsed, "ticks_per_second": n / elapsed,
    "p50_us": latencies[len(latencies) // 2] * 1e6, "p99_us": latencies[int(len(latencies) * 0.99)] * 1e6,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "db_mb": db.stat().st_size / 2**20,
}))
"""

BREAKDOWN = r"""
import time, os, tempfile
from datetime import datetime, timezone, timedelta
from pathlib import Path
import numpy as np, pandas as pd
from sqlalchemy import select, insert
from trader.config import load_strategy_config
from trader.ledger import open_ledger, sessions
from trader.ledger.models import DaemonState, EquityPoint, StrategyVersion
import strategies
cfg = load_strategy_config(os.environ["CFG"])
db = Path(tempfile.mkdtemp()) / "b.db"
engine = open_ledger(f"sqlite:///{db}")
S = sessions(engine)
with S.begin() as s:
    s.add(StrategyVersion(version="v", name="n", strategy="x", settings={}))
    s.add(DaemonState(book="main", state="running", mode="paper", peak_equity=0.0))
s = S(); st = s.get(DaemonState, "main"); t0 = datetime(2020, 1, 1, tzinfo=timezone.utc)
def med(fn, n=2000):
    out = []
    for i in range(n):
        a = time.perf_counter(); fn(i); out.append(time.perf_counter() - a)
    return statistics.median(out) * 1e6
import statistics
def orm(i):
    s.execute(select(DaemonState.state, DaemonState.reason, DaemonState.peak_equity).where(DaemonState.book == "main")).one()
    st.last_tick_at = t0 + timedelta(minutes=i); st.peak_equity = float(i)
    s.execute(insert(EquityPoint), [dict(book="main", time=t0 + timedelta(minutes=i), equity=1.0, cash=1.0,
              position_qty=0.0, price=1.0, target=0.0, strategy_version="v")])
    s.commit()
raw = engine.raw_connection()
def rawf(i):
    c = raw.cursor()
    c.execute("select state, reason, peak_equity from daemon_state where book='main'").fetchone()
    c.execute("update daemon_state set last_tick_at=?, peak_equity=? where book='main'", ((t0 + timedelta(minutes=10**6 + i)).replace(tzinfo=None), float(i)))
    c.execute("insert into equity_points (book,time,equity,cash,position_qty,price,target,strategy_version) values ('main',?,1,1,0,1,0,'v')", ((t0 + timedelta(minutes=10**6 + i)).replace(tzinfo=None),))
    raw.commit()
frame = pd.DataFrame({c: np.linspace(100, 200, 600) for c in ("open", "high", "low", "close")})
frame["volume"] = 1.0
strat = cfg.strategy_def()
print(f"  the tick's ledger writes through SQLAlchemy (read state, update, insert, commit): {med(orm):.0f} us")
print(f"  the same statements on the raw sqlite3 connection:                             {med(rawf):.0f} us")
print(f"  the strategy on a {len(frame)}-bar window (pandas rolling means):                      {med(lambda i: strat.exposure(frame, cfg.params), 500):.0f} us")
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="a whole year of minutes (525,600 ticks)")
    parser.add_argument("--ticks", type=int, default=50_000)
    args = parser.parse_args()
    ticks = 525_600 if args.full else args.ticks
    cfg = str(ROOT / "config" / "strategy.yaml")
    py = sys.executable

    print(f"replay: {ticks:,} one-minute ticks through the engine (paper broker, SQLite ledger)")
    out = subprocess.run([py, "-c", CHILD, str(ticks), cfg], capture_output=True, text=True, check=True, cwd=ROOT)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {r['ticks_per_second']:,.0f} ticks/s ({r['seconds']:.1f} s), tick p50 {r['p50_us']:.0f} us, "
          f"p99 {r['p99_us']:.0f} us, peak RSS {r['peak_rss_mb']:.0f} MB, ledger {r['db_mb']:.1f} MB")
    print("  aims: >= 5,000 ticks/s, < 250 MB")

    print("where a tick's time goes (medians):")
    subprocess.run([py, "-c", BREAKDOWN], check=True, cwd=ROOT, env={**__import__("os").environ, "CFG": cfg})

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

"""Chaos runs: the real daemon killed, faulted, soaked and fed bad input, and its ledger
checked against the exchange's own record. The full runs behind tests/reliability (the CI
subset); the method and the figures are in benchmarks/RELIABILITY.md.

    .venv/bin/python benchmarks/chaos.py                    # 50 kills, faults, 30-day soak, inputs
    .venv/bin/python benchmarks/chaos.py --kills 200 --soak-days 60 --seed 7
    .venv/bin/python benchmarks/chaos.py --only kills,faults --json chaos.json

* kills: `trader run --live --settle 0` (keys in the environment, `trader approve --live --yes`
  first) against the local exchange in this process, 1-second candles following the wall
  clock, ma_cross 2/5 (an order every few seconds). SIGKILL at random points (after an order
  intent is logged, inside a tick, at a random instant, during start-up), restart, repeat;
  after every death and at the end the ledger is checked against the exchange.
* probe: a kill while an order request is still on its way to a slow exchange, restart
  within the exchange's recvWindow: the restart must wait for the request rather than give
  the order up (RELIABILITY.md, problem 1, fixed).
* faults: each fault injected on the endpoint where it hurts, against the real daemon: it
  must keep running, wait out Retry-After, stop cleanly (exit 0) and end consistent.
* soak: a month of 1-minute candles through the daemon's own tick (Service.tick, live broker,
  ccxt, SQLite) at full speed on a driven clock, the exchange in a child process, faults
  sprinkled in; RSS sampled after a collection every N ticks.
* inputs: every mutation of tests/reliability/mutations.py through the loaders, and a sample
  through the real CLI.

Exit status 0 when nothing was lost and everything was consistent, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from tests.reliability import harness as H  # noqa: E402
from tests.reliability import mutations as M  # noqa: E402
from trader.localexchange import faults  # noqa: E402

CANDLES, ORDER, LOOKUP, BALANCE = "GET /api/v3/klines", "POST /api/v3/order", "GET /api/v3/order", "GET /api/v3/account"
INSUFFICIENT = faults.http_error(400, -2010, "Account has insufficient balance for requested action.")
KILL_WEIGHTS = {"order": 0.5, "tick": 0.2, "uniform": 0.15, "startup": 0.15}
# with a stop resting on the exchange: also right after one is placed or cancelled
STOP_LOSS = 0.002  # the 1-second candles swing 0.4%: stops fire every few positions
KILL_WEIGHTS_WITH_STOPS = {"order": 0.3, "protect": 0.3, "tick": 0.15, "uniform": 0.1, "startup": 0.15}
# with an OCO list (stop and take-profit) resting: also right after a leg's fill is booked
TAKE_PROFIT = 0.002
KILL_WEIGHTS_WITH_OCO = {"order": 0.25, "protect": 0.25, "protect_fill": 0.2, "tick": 0.1, "uniform": 0.05,
                         "startup": 0.15}
OCO = "POST /api/v3/orderList/oco"
RSS_BOUND_MB = 50.0


def log(text: str) -> None:
    print(text, flush=True)


def table(title: str, rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> str:
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    out = [f"\n{title}", line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(out + [line(r) for r in cells[1:]])


# -- kills -----------------------------------------------------------------------------------


def run_kills(n: int, seed: int, root: Path, fee_mode: str = "quote", stop_loss: float | None = None,
              downtime: float = 0.0, take_profit: float | None = None) -> dict:
    started = time.time()
    world = H.LiveWorld(root / f"kills-{fee_mode}-{stop_loss}-{take_profit}", seed, future=3600 + 30 * n,
                        fee_mode=fee_mode, strategy=H.strategy_yaml(stop_loss=stop_loss, take_profit=take_profit))
    rng = np.random.default_rng(seed)
    weights_by_mode = KILL_WEIGHTS_WITH_OCO if take_profit else KILL_WEIGHTS_WITH_STOPS if stop_loss else KILL_WEIGHTS
    modes, weights = zip(*weights_by_mode.items())
    records: list[H.KillRecord] = []
    try:
        for k in range(1, n + 1):
            mode = str(rng.choice(modes, p=weights))
            record = H.kill_once(world, k, mode, rng)
            records.append(record)
            log(f"  kill {k:3d}/{n} {mode:8s} at {record.seconds:5.2f} s: {record.category}"
                + (f"  PROBLEMS: {record.problems}" if record.problems else ""))
            if downtime:
                time.sleep(downtime)  # down: a resting stop may fire meanwhile
        code, final_problems = H.settle(world)
        final = world.check()
        hits = world.exchange.hits()
        stops = [o for o in world.exchange.orders if o["type"] == "STOP_LOSS"]
        takes = [o for o in world.exchange.orders if o["type"] == "LIMIT_MAKER"]
        weight = H.max_weight_per_minute(world.exchange, hits)
        orders_10s = H.max_orders_per_10s(hits)
    finally:
        world.close()
    categories: dict[str, int] = {}
    for r in records:
        categories[r.category] = categories.get(r.category, 0) + 1
    by_mode = {m: sum(r.mode == m for r in records) for m in modes}
    problems = [p for r in records for p in r.problems] + final_problems + final.problems
    missing = [p for p in final.problems if "missing from the ledger" in p]
    return {
        "kills": n, "survived": sum(not r.problems for r in records) if final.ok and not final_problems else 0,
        "by_mode": by_mode, "at_death": categories,
        "in_flight_settled": len({cid for r in records for cid, _ in r.unresolved}),
        "exchange_orders": final.orders, "exchange_trades": final.trades, "ledger_fills": final.fills,
        "ledger_orders": dict(final.ledger_orders), "position": final.position, "exchange_btc": final.exchange_base,
        "cash": final.cash, "exchange_usdt": final.exchange_quote,
        # fees paid in BNB: the ledger's BNB against the exchange's (world.check flags a difference)
        "fee_balances": {c: [v, final.exchange_fee_balances.get(c, 0.0)] for c, v in final.fee_balances.items()},
        "duplicate_orders": sum(
            "placed" in p for p in final.problems), "fills_lost": len(missing), "final_exit_code": code,
        "max_weight_per_minute": weight, "max_orders_per_10s": orders_10s,
        "seconds": round(time.time() - started, 1), "problems": problems,
        "fee_mode": fee_mode, "stop_loss": stop_loss, "take_profit": take_profit,
        "stops": {status: sum(o["status"] == status for o in stops) for status in ("FILLED", "CANCELED", "NEW", "EXPIRED")},
        "takes": {status: sum(o["status"] == status for o in takes) for status in ("FILLED", "CANCELED", "NEW", "EXPIRED")},
        "stops_rejected_in_ledger": dict(final.ledger_orders).get("rejected", 0),
    }


def run_probe(root: Path, seed: int) -> dict:
    """SIGKILL while an order request is on its way to a slow exchange (3 s), restart at once:
    the restarted daemon looks the order up before the exchange has it, and must wait."""
    # a stake of 0.3: the lost buy and the one that replaces it both fit in the balance, so
    # the outcome does not depend on which of the two reaches the exchange first
    world = H.LiveWorld(root / "probe-in-flight", seed, strategy=H.strategy_yaml(stake=0.3))
    try:
        d = world.daemon()
        d.wait_event("started", timeout=90)
        sell = d.wait_for(lambda r: r.get("event") == "order_intent" and ": sell " in str(r.get("message")),
                          timeout=90)
        d.wait_for(lambda r: r.get("event") == "order_filled" and r.get("client_order_id") == sell["client_order_id"],
                   timeout=60)  # flat again: the next order is a buy
        world.exchange.inject(ORDER, faults.latency(3.0))
        d.wait_for(lambda r: r.get("event") == "order_intent" and ": buy " in str(r.get("message")),
                   after=d.mark(), timeout=60)
        time.sleep(0.3)
        d.kill9()
        orders, _, _, _ = H.ledger_rows(world.url)
        at_death = [(o.client_order_id, o.status) for o in orders if o.status in H.UNRESOLVED]
        restarted = world.daemon()
        restarted.wait_event("started", timeout=90)
        restarted.wait_event("tick", timeout=60, count=6)  # the slow request has landed meanwhile
        code = restarted.stop()
        final = world.check()
        orders, _, _, _ = H.ledger_rows(world.url)
        verdicts = {cid: next(o.status for o in orders if o.client_order_id == cid) for cid, _ in at_death}
    finally:
        world.close()
    return {"at_death": at_death, "ledger_verdict_after_restart": verdicts, "exit_code": code,
            "consistent": final.ok, "problems": final.problems,
            "fills_lost": sum("missing from the ledger" in p for p in final.problems), "summary": final.summary()}


# -- faults against the real daemon ----------------------------------------------------------


@dataclass
class FaultCase:
    name: str
    injections: list[tuple[str, Any, int]]
    retry_after: float | None = None
    stop_loss: float | None = None  # a stop resting on the exchange while a position is open
    take_profit: float | None = None  # with the stop: the two rest as one OCO list


FAULT_CASES = [
    FaultCase("latency 1.5 s on candles", [(CANDLES, faults.latency(1.5), 1)]),
    FaultCase("latency 12 s on candles (ccxt times out at 10 s)", [(CANDLES, faults.latency(12.0), 1)]),
    FaultCase("latency 12 s on the order (times out; lands after recvWindow)", [(ORDER, faults.latency(12.0), 1)]),
    FaultCase("429 Retry-After 3 s on candles", [(CANDLES, faults.rate_limited(retry_after=3), 1)], 3.0),
    FaultCase("418 Retry-After 5 s on candles", [(CANDLES, faults.banned(retry_after=5), 1)], 5.0),
    FaultCase("418 Retry-After 4 s on the balance", [(BALANCE, faults.banned(retry_after=4), 1)], 4.0),
    FaultCase("429 Retry-After 3 s on the order", [(ORDER, faults.rate_limited(retry_after=3), 1)], 3.0),
    FaultCase("503 twice on candles", [(CANDLES, faults.server_error(503), 2)]),
    FaultCase("maintenance, Retry-After 3 s, on candles", [(CANDLES, faults.maintenance(retry_after=3), 1)], 3.0),
    FaultCase("500 on the order", [(ORDER, faults.server_error(500), 1)]),
    FaultCase("504 from a proxy on the order", [(ORDER, faults.gateway_timeout(), 1)]),
    FaultCase("connection dropped after the order was accepted", [(ORDER, faults.drop_after_accept(), 1)]),
    FaultCase("dropped, then a malformed order lookup",
              [(ORDER, faults.drop_after_accept(), 1), (LOOKUP, faults.malformed(), 1)]),
    FaultCase("malformed JSON candles", [(CANDLES, faults.malformed(), 1)]),
    FaultCase("malformed answer to an accepted order", [(ORDER, faults.malformed(process=True), 1)]),
    FaultCase("clock skew +20 s on the order", [(ORDER, faults.clock_skew(20_000), 1)]),
    FaultCase("clock skew -5 s on the balance", [(BALANCE, faults.clock_skew(-5_000), 1)]),
    FaultCase("insufficient balance on the order", [(ORDER, INSUFFICIENT, 1)]),
    FaultCase("market order left open, partly filled (cancelled next tick)", [(ORDER, faults.stay_open(1), 1)]),
    FaultCase("market order expired after a partial fill", [(ORDER, faults.expire(1), 1)]),
    FaultCase("market order expired at the next candle", [(ORDER, faults.expire_later(1), 1)]),
    FaultCase("market order rejected after it was accepted", [(ORDER, faults.reject_later(), 1)]),
    FaultCase("the exchange refuses orders twice, stops on (the stop among them)",
              [(ORDER, faults.http_error(400, -2010, "Order type not allowed for this API key."), 2)],
              stop_loss=0.002),
    FaultCase("dropped after the stop (or an order) was accepted, stops on",
              [(ORDER, faults.drop_after_accept(), 2)], stop_loss=0.002),
    FaultCase("the exchange refuses the OCO list twice (then the stop alone)",
              [(OCO, faults.http_error(400, -2010, "Order type not allowed for this API key."), 2)],
              stop_loss=0.002, take_profit=TAKE_PROFIT),
    FaultCase("dropped after the OCO list was accepted", [(OCO, faults.drop_after_accept(), 1)],
              stop_loss=0.002, take_profit=TAKE_PROFIT),
    FaultCase("500 on the OCO list", [(OCO, faults.server_error(500), 1)], stop_loss=0.002, take_profit=TAKE_PROFIT),
    FaultCase("the OCO's stop triggers into a thin book (one part fills, the rest expires)",
              [(OCO, faults.expire(1), 3)], stop_loss=0.002, take_profit=TAKE_PROFIT),
]


def run_fault(case: FaultCase, root: Path, seed: int) -> dict:
    slug = "".join(c if c.isalnum() else "-" for c in case.name.lower())[:50]
    world = H.LiveWorld(root / "faults" / slug, seed,
                        strategy=H.strategy_yaml(stop_loss=case.stop_loss, take_profit=case.take_profit))
    row: dict[str, Any] = {"fault": case.name, "problems": []}
    d = world.daemon()
    try:
        if d.wait_event("started", timeout=90) is None or d.wait_event("tick", timeout=60) is None:
            row["problems"].append(f"did not start: {d.stderr()[-500:]}")
        injected = time.time()
        for pattern, fault, times in case.injections:
            world.exchange.inject(pattern, fault, times)
        deadline = time.monotonic() + 120
        while world.exchange.faults.pending() and time.monotonic() < deadline and d.alive():
            time.sleep(0.05)
        row["applied"] = world.exchange.faults.pending() == 0
        mark = d.mark()
        row["ticks_after"] = 3 if d.wait_event("tick", after=mark, timeout=90, count=3) else \
            sum(r.get("event") == "tick" for r in d.records[mark:])
        row["alive"] = d.alive()
        row["state"] = H.daemon_state(world.url)[0]
    finally:
        row["exit_code"] = d.stop()
    check = world.check()
    hits = world.exchange.hits()
    row["consistent"] = check.ok
    row["orders"] = check.orders
    row["problems"] += check.problems
    if case.retry_after is not None:
        refused = [(h, gap) for h, gap in H.retry_after_waits(hits, (429, 418, 503)) if h.start >= injected]
        row["waited"] = round(min(gap for _, gap in refused), 2) if refused else None
        row["retry_after"] = case.retry_after
        row["respected"] = bool(refused) and row["waited"] >= case.retry_after - 0.05
    row["max_weight_per_minute"] = H.max_weight_per_minute(world.exchange, hits)
    row["stderr_traceback"] = "Traceback" in d.stderr()
    world.close()
    row["survived"] = bool(row["applied"] and row["alive"] and row["ticks_after"] >= 3 and row["exit_code"] == 0
                           and row["state"] == "running" and not row["stderr_traceback"])
    return row


def run_faults(root: Path, seed: int, matching: str = "") -> list[dict]:
    rows = []
    for i, case in enumerate(FAULT_CASES):
        if matching.lower() not in case.name.lower():
            continue
        row = run_fault(case, root, seed + i)
        rows.append(row)
        ra = f", waited {row['waited']} s for Retry-After {row['retry_after']:g} s" if "retry_after" in row else ""
        log(f"  {case.name}: survived {row['survived']}, consistent {row['consistent']}{ra}"
            + (f"  PROBLEMS: {row['problems']}" if row["problems"] else ""))
    return rows


# -- the soak --------------------------------------------------------------------------------

SOAK_FAULTS = [
    ("latency 0.2 s on candles", CANDLES, faults.latency(0.2)),
    ("timeout on candles", CANDLES, faults.latency(2.2)),  # the soak's client gives up at 2 s
    ("429 on candles", CANDLES, faults.rate_limited(retry_after=30)),
    ("418 on candles", CANDLES, faults.banned(retry_after=120)),
    ("503 on candles", CANDLES, faults.server_error(503)),
    ("maintenance on candles", CANDLES, faults.maintenance(retry_after=60)),
    ("malformed candles", CANDLES, faults.malformed()),
    ("418 on the balance", BALANCE, faults.banned(retry_after=60)),
    ("clock skew on the balance", BALANCE, faults.clock_skew(20_000)),
    ("dropped after accept", ORDER, faults.drop_after_accept()),
    ("malformed accepted order", ORDER, faults.malformed(process=True)),
    ("500 on the order", ORDER, faults.server_error(500)),
    ("504 on the order", ORDER, faults.gateway_timeout()),
    ("timeout on the order, lands later", ORDER, faults.latency(2.5)),  # within the 5 s recvWindow
    ("429 on the order", ORDER, faults.rate_limited(retry_after=30)),
    ("clock skew on the order", ORDER, faults.clock_skew(20_000)),
    ("insufficient balance", ORDER, INSUFFICIENT),
]


class EventCounter(logging.Handler):
    """Counts the daemon's warnings and errors by event instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        key = str(getattr(record, "event", None) or record.levelname.lower())
        self.counts[key] = self.counts.get(key, 0) + 1


def run_soak(days: float, seed: int, root: Path, sample_every: int, fault_every: int) -> dict:
    counter = EventCounter()
    logging.getLogger().addHandler(counter)
    try:
        return _soak(days, seed, root, sample_every, fault_every, counter)
    finally:
        logging.getLogger().removeHandler(counter)


def _soak(days: float, seed: int, root: Path, sample_every: int, fault_every: int, counter: EventCounter) -> dict:
    folder = root / "soak"
    folder.mkdir(parents=True, exist_ok=True)
    exchange = H.RemoteExchange(days, seed)
    config = folder / "strategy.yaml"
    config.write_text(H.strategy_yaml("1m", fast=5, slow=20))
    svc = H.DrivenService(exchange.base_url, lambda ms: exchange.call("set_clock", ms), config, folder,
                          timeout_ms=2000)
    rng = np.random.default_rng(seed)
    start_ms = int(H.SOAK_START.value // 10**6)
    first, ticks = 600, int(days * 1440)
    warmup = max(2000, ticks // 10)
    samples: list[tuple[int, float]] = []
    injected: dict[str, int] = {}
    started = time.time()
    try:
        for n in range(ticks):
            if n and n % fault_every == 0 and exchange.call("applied") >= sum(injected.values()):
                name, pattern, fault = SOAK_FAULTS[int(rng.integers(len(SOAK_FAULTS)))]
                exchange.call("inject", pattern, fault, 1)
                injected[name] = injected.get(name, 0) + 1
            svc.tick_at(start_ms + (first + n) * 60_000)
            if n % sample_every == 0 or n == ticks - 1:
                samples.append((n, H.collected_rss_mb()))
            if n and n % 5000 == 0:
                log(f"  soak: {n:,}/{ticks:,} ticks, RSS {samples[-1][1]:.1f} MB, {time.time() - started:.0f} s")
            if n % 2000 == 0:
                exchange.call("forget_hits")  # the child's request log is not the daemon's memory
        svc.settle()
        elapsed = time.time() - started
        snap = exchange.call("snapshot")
        check = H.check_consistency(svc.url, snap["orders"], snap["trades"], snap["balances"])
        applied = exchange.call("applied")
        state = svc.state()
    finally:
        svc.close()
        exchange.close()
    after = [(n, mb) for n, mb in samples if n >= warmup]
    base = after[0][1] if after else samples[-1][1]
    slope = float(np.polyfit([n for n, _ in after], [mb for _, mb in after], 1)[0] * 10_000) if len(after) > 2 else 0.0
    growth = samples[-1][1] - base
    return {
        "days": days, "ticks": ticks, "seconds": round(elapsed, 1), "ticks_per_second": round(ticks / elapsed, 1),
        "orders": check.orders, "trades": check.trades, "fills": check.fills, "faults_injected": sum(injected.values()),
        "faults_applied": applied, "faults_by_kind": injected, "waits_requested": len(svc.waits),
        "warnings_by_event": counter.counts,
        "state": state[0], "consistent": check.ok, "problems": check.problems, "summary": check.summary(),
        "rss_start_mb": round(samples[0][1], 1), "rss_after_warmup_mb": round(base, 1),
        "rss_end_mb": round(samples[-1][1], 1), "rss_max_mb": round(max(mb for _, mb in samples), 1),
        "growth_after_warmup_mb": round(growth, 1), "slope_mb_per_10k_ticks": round(slope, 2),
        "warmup_ticks": warmup, "bound_mb": RSS_BOUND_MB, "within_bound": growth < RSS_BOUND_MB,
        "samples": [(n, round(mb, 1)) for n, mb in samples],
    }


# -- bad input -------------------------------------------------------------------------------


def run_inputs(root: Path, seed: int, cli_sample: int) -> dict:
    folder = root / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    btc = M.btc_hourly()
    mutations = M.all_mutations() + M.yaml_layer_mutations()
    verdicts: dict[str, int] = {}
    problems: dict[str, list[str]] = {}
    started = time.time()
    for m in mutations:
        verdict, found = M.judge(m, folder, btc)
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
        if found:
            cause = M.known_bug(m) or ("yaml-layer" if m.name.startswith("file:") and verdict == "escaped" else "new")
            problems.setdefault(cause, []).extend(found)
    in_process_seconds = time.time() - started

    # the real CLI: the whole-file damage, and a random sample of the field mutations
    rng = np.random.default_rng(seed)
    whole = [m for m in mutations if m.name.startswith("file:")]
    fields = [m for m in mutations if not m.name.startswith("file:")]
    picked = whole + [fields[i] for i in rng.choice(len(fields), size=max(0, cli_sample - len(whole)), replace=False)]
    env = H.clean_env(TRADER_DATA_DIR=str(folder / "data"))
    data = ROOT / "tests" / "data" / "btcusd-1h.csv"

    def run(item: tuple[int, M.Mutation]) -> tuple[M.Mutation, Path, Any]:
        i, m = item
        sub = folder / f"cli-{i}"
        sub.mkdir(exist_ok=True)
        path = M.write(m, sub)
        if m.kind == "strategy":
            args = ["check", "--config", str(path)]
        else:
            args = ["run", "--replay", str(data), "--config", str(M.STRATEGY_FILE), "--goals", str(path)]
        return m, path, H.trader(args, env, timeout=300)

    cli: dict[str, int] = {}
    cli_problems: list[str] = []
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        for m, path, done in pool.map(run, enumerate(picked)):
            tb = "Traceback" in done.stdout + done.stderr
            if done.returncode == 0:
                cli["accepted"] = cli.get("accepted", 0) + 1
            elif done.returncode == 2 and not tb and str(path) in done.stderr and (
                    m.field is None or M.names_field(done.stderr, m.field)):
                cli["refused clearly"] = cli.get("refused clearly", 0) + 1
            else:
                cli["bad"] = cli.get("bad", 0) + 1
                cli_problems.append(f"{m.id}: exit {done.returncode}{' with a traceback' if tb else ''}: "
                                    f"{done.stderr.strip().splitlines()[-1][:200] if done.stderr.strip() else ''}")
    return {"in_process": len(mutations), "strategy": sum(m.kind == "strategy" for m in mutations),
            "goals": sum(m.kind == "goals" for m in mutations), "verdicts": verdicts,
            "problems_by_cause": {k: len(v) for k, v in problems.items()},
            "problem_examples": {k: v[:3] for k, v in problems.items()},
            "in_process_seconds": round(in_process_seconds, 1),
            "cli_runs": len(picked), "cli": cli, "cli_problems": cli_problems}


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=50, help="SIGKILLs of the real daemon (default 50)")
    parser.add_argument("--soak-days", type=float, default=30.0, help="simulated days of 1-minute candles (default 30)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mode-kills", type=int, default=20,
                        help="stops: SIGKILLs per fee mode with a stop resting on the exchange (default 20)")
    parser.add_argument("--only", default="kills,stops,oco,probe,faults,soak,inputs",
                        help="comma-separated parts to run (default: all)")
    parser.add_argument("--faults-matching", default="", help="faults: only the cases whose name holds this text")
    parser.add_argument("--sample-every", type=int, default=500, help="soak: ticks between RSS samples")
    parser.add_argument("--fault-every", type=int, default=240, help="soak: ticks between injected faults")
    parser.add_argument("--cli-sample", type=int, default=40, help="bad inputs also run through the real CLI")
    parser.add_argument("--workdir", help="where the ledgers and logs go (default: a new temporary folder)")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args(argv)
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="chaos-"))
    root.mkdir(parents=True, exist_ok=True)
    log(f"chaos run, seed {args.seed}, working in {root}")
    results: dict[str, Any] = {"seed": args.seed, "workdir": str(root)}
    H.enable_one_second_candles()

    if "kills" in parts:
        log(f"\n== kill -9 x {args.kills}")
        results["kills"] = run_kills(args.kills, args.seed, root)
    if "stops" in parts:
        results["stops"] = []
        for mode in ("quote", "base", "third"):
            log(f"\n== kill -9 x {args.mode_kills}, fees in {mode}, a stop resting on the exchange, 2 s down each")
            results["stops"].append(run_kills(args.mode_kills, args.seed, root, mode, STOP_LOSS, downtime=2.0))
    if "oco" in parts:
        results["oco"] = []
        for mode in ("quote", "base", "third"):
            log(f"\n== kill -9 x {args.mode_kills}, fees in {mode}, an OCO list (stop and take-profit) resting, "
                "2 s down each")
            results["oco"].append(run_kills(args.mode_kills, args.seed, root, mode, STOP_LOSS, downtime=2.0,
                                            take_profit=TAKE_PROFIT))
    if "probe" in parts:
        log("\n== probe: kill while an order request is still in flight")
        results["probe"] = run_probe(root, args.seed)
        log(f"  {results['probe']}")
    if "faults" in parts:
        log(f"\n== faults x {sum(args.faults_matching.lower() in c.name.lower() for c in FAULT_CASES)} against the real daemon")
        results["faults"] = run_faults(root, args.seed, args.faults_matching)
    if "soak" in parts:
        log(f"\n== soak: {args.soak_days:g} days of 1-minute candles")
        results["soak"] = run_soak(args.soak_days, args.seed, root, args.sample_every, args.fault_every)
    if "inputs" in parts:
        log("\n== bad input")
        results["inputs"] = run_inputs(root, args.seed, args.cli_sample)

    failed = report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 1 if failed else 0


def _fee_coins(k: dict) -> str:
    """The BNB the fees were paid from, ledger vs exchange (fees in a third currency)."""
    return "".join(f"; {c} {v:.8f} vs exchange {x:.8f}" for c, (v, x) in k.get("fee_balances", {}).items())


def report(results: dict) -> bool:
    """Print the figures; True when anything was lost, inconsistent or unexpected."""
    rows: list[tuple[str, str]] = []
    known: list[str] = []  # the problems in trader/ and hermes/ that RELIABILITY.md describes
    unexpected: list[str] = []
    if "kills" in results:
        k = results["kills"]
        unexpected += k["problems"]
        rows += [
            ("kills survived", f"{k['survived']}/{k['kills']} (" + ", ".join(f"{m} {n}" for m, n in k["by_mode"].items())
             + f"), {k['seconds']:.0f} s"),
            ("at the moment of death", "; ".join(f"{c}: {n}" for c, n in k["at_death"].items())),
            ("distinct orders in flight at a death, settled after restart", str(k["in_flight_settled"])),
            ("exchange orders / trades / ledger fills", f"{k['exchange_orders']} / {k['exchange_trades']} / {k['ledger_fills']}"),
            ("duplicate client order ids", str(k["duplicate_orders"])),
            ("position vs exchange BTC", f"{k['position']:.8f} vs {k['exchange_btc']:.8f}"),
            ("cash vs exchange USDT", f"{k['cash']:.6f} vs {k['exchange_usdt']:.6f}"),
            ("busiest minute (request weight, limit 6000)", str(k["max_weight_per_minute"])),
            ("busiest 10 s (orders, limit 100)", str(k["max_orders_per_10s"])),
            ("fills lost (kills)", str(k["fills_lost"])),
        ]
    for k in results.get("stops", []):
        unexpected += k["problems"]
        rows.append((f"kills, fees in {k['fee_mode']}, stops on the exchange",
                     f"{k['survived']}/{k['kills']} survived (" + ", ".join(f"{m} {n}" for m, n in k["by_mode"].items())
                     + f"); {k['exchange_orders']} orders, {k['exchange_trades']} trades, {k['ledger_fills']} fills; "
                     f"stops filled {k['stops']['FILLED']}, cancelled {k['stops']['CANCELED']}, resting "
                     f"{k['stops']['NEW']}; duplicates {k['duplicate_orders']}, fills lost {k['fills_lost']}; "
                     f"position {k['position']:.8f} vs exchange {k['exchange_btc']:.8f}{_fee_coins(k)}; "
                     f"{k['seconds']:.0f} s"))
    for k in results.get("oco", []):
        unexpected += k["problems"]
        rows.append((f"kills, fees in {k['fee_mode']}, OCO lists on the exchange",
                     f"{k['survived']}/{k['kills']} survived (" + ", ".join(f"{m} {n}" for m, n in k["by_mode"].items())
                     + f"); {k['exchange_orders']} orders, {k['exchange_trades']} trades, {k['ledger_fills']} fills; "
                     f"stop legs filled {k['stops']['FILLED']}, expired {k['stops']['EXPIRED']}, cancelled "
                     f"{k['stops']['CANCELED']}; take-profit legs filled {k['takes']['FILLED']}, expired "
                     f"{k['takes']['EXPIRED']}, cancelled {k['takes']['CANCELED']}; resting {k['stops']['NEW']}; "
                     f"duplicates {k['duplicate_orders']}, fills lost {k['fills_lost']}; position "
                     f"{k['position']:.8f} vs exchange {k['exchange_btc']:.8f}; cash {k['cash']:.6f} vs "
                     f"{k['exchange_usdt']:.6f}{_fee_coins(k)}; {k['seconds']:.0f} s"))
    if "probe" in results:
        p = results["probe"]
        rows.append(("probe: kill with an order in flight to a slow exchange",
                     f"ledger says {p['ledger_verdict_after_restart']}; consistent {p['consistent']}; "
                     f"fills lost {p['fills_lost']}"))
        if not p["consistent"]:
            unexpected.append(f"probe (in-flight order): {p['summary']}; {p['problems'][:3]}")
    if "faults" in results:
        f = results["faults"]
        ra = [r for r in f if "retry_after" in r]
        for r in f:
            if not r["consistent"] or not r["survived"]:
                unexpected.append(f"fault {r['fault']}: survived {r['survived']}, problems {r['problems']}")
            if "retry_after" in r and not r["respected"]:
                unexpected.append(f"Retry-After: fault {r['fault']}: next request {r['waited']} s after the "
                                  f"refusal, Retry-After {r['retry_after']:g} s")
        rows += [("faults survived (kept running, exit 0 on SIGTERM)", f"{sum(r['survived'] for r in f)}/{len(f)}"),
                 ("faults ending consistent", f"{sum(r['consistent'] for r in f)}/{len(f)}"),
                 ("Retry-After respected", f"{sum(bool(r['respected']) for r in ra)}/{len(ra)}")]
        print(table("faults against the real daemon", [
            (r["fault"], r["survived"], r["consistent"], r.get("orders", ""),
             f"{r['waited']} / {r['retry_after']:g}" if "retry_after" in r else "", r["max_weight_per_minute"])
            for r in f], ("fault", "survived", "consistent", "orders", "waited / Retry-After (s)", "weight/min")))
    if "soak" in results:
        s = results["soak"]
        if not s["consistent"] or not s["within_bound"] or s["state"] != "running":
            unexpected.append(f"soak: consistent {s['consistent']}, RSS growth {s['growth_after_warmup_mb']} MB, "
                              f"state {s['state']}, problems {s['problems'][:5]}")
        rows += [("soak", f"{s['ticks']:,} ticks ({s['days']:g} days) in {s['seconds']:.0f} s "
                          f"({s['ticks_per_second']} ticks/s), {s['orders']} orders, {s['faults_applied']} faults; "
                          f"consistent {s['consistent']}, state {s['state']}"),
                 ("soak RSS", f"{s['rss_start_mb']} MB at start, {s['rss_after_warmup_mb']} MB after "
                              f"{s['warmup_ticks']:,} ticks, {s['rss_end_mb']} MB at the end (max {s['rss_max_mb']}): "
                              f"growth {s['growth_after_warmup_mb']} MB (bound {s['bound_mb']:g} MB), "
                              f"slope {s['slope_mb_per_10k_ticks']} MB / 10k ticks")]
    if "inputs" in results:
        i = results["inputs"]
        for cause, examples in i["problem_examples"].items():
            (unexpected if cause == "new" else known).append(
                f"inputs ({cause}, {i['problems_by_cause'][cause]}): {examples[0]}")
        for line in i["cli_problems"]:
            (known if "file:deep_nesting" in line or "file:integer_5000" in line else unexpected).append(f"CLI {line}")
        rows += [("inputs tried", f"{i['in_process']:,} in-process ({i['strategy']} strategy, {i['goals']} goals) "
                                  f"+ {i['cli_runs']} through the CLI"),
                 ("in-process verdicts", ", ".join(f"{k} {v}" for k, v in i["verdicts"].items())),
                 ("input problems by cause", ", ".join(f"{k} {v}" for k, v in i["problems_by_cause"].items()) or "none"),
                 ("CLI", ", ".join(f"{k} {v}" for k, v in i["cli"].items()))]
    print(table("figures", rows, ("figure", "value")))
    lost = sum(results.get(part, {}).get("fills_lost", 0) for part in ("kills", "probe"))
    if known:
        print("\nknown problems (benchmarks/RELIABILITY.md):\n  - " + "\n  - ".join(known))
    if unexpected:
        print("\nUNEXPECTED problems:\n  - " + "\n  - ".join(unexpected))
    print(f"\nanything lost: {'nothing' if not lost else f'{lost} fill(s)'}")
    results["known_problems"], results["unexpected_problems"], results["fills_lost"] = known, unexpected, lost
    return bool(lost or unexpected)


if __name__ == "__main__":
    raise SystemExit(main())

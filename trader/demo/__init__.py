"""`trader demo`: the daemon itself, trading through ccxt against the bundled local exchange in
accelerated time, with Hermes reviewing every simulated week. Offline, in its own folder.

One engine, two clocks. The daemon's `Service` is built as `trader run --live` builds it (live
gate, ccxt adapter, live broker, risk engine, SQLite ledger, health server on $PORT), with the
two things its start-up point lets a caller swap:

* its clock: the local exchange's market clock instead of the wall clock, so the feed, the
  ledger's tick times, the weekly review and /health all agree on what "now" is;
* its driver: `FastForward` instead of APScheduler. Candle by candle it moves the exchange to
  the next candle and runs the daemon's own `tick` (feed, engine, orders through ccxt, shadow
  books); at each fire time of the goals' review cron (`hermes.simulation.plan`, the schedule
  `hermes simulate` fast-forwards through) it runs the daemon's own `review`.

The candles are the project's real hourly BTC/USD candles (Coinbase, July to November 2017,
3,000 bars, 54 kB gzipped: the strategy's warm-up, a 30-day lookback and 12 weekly reviews).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from trader.errors import InputError

PACKAGE = Path(__file__).resolve().parent
CANDLES = PACKAGE / "btcusd-1h.csv.gz"
MARKER = ".trader-demo"  # a folder holding this is an earlier demo's, which a new demo replaces
KEY, SECRET = "demo-key", "demo-secret"  # the local exchange's keys: play money, 127.0.0.1 only
# what the demo's process must not inherit: a real ledger, real keys, a webhook, Telegram, a paid model
_UNSET = ("DATABASE_URL", "EXCHANGE_API_PASSWORD", "TRADER_WEBHOOK_URL", "TRADER_WEBHOOK_STYLE",
          "ANTHROPIC_API_KEY", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID")


@dataclass(frozen=True)
class DemoOptions:
    folder: Path
    weeks: int | None = None  # None: as many as the candles hold
    speed: float | None = 50.0  # candles per second; None: as fast as the machine goes
    port: int = 8080


def run_demo(options: DemoOptions, out: TextIO = sys.stdout) -> int:
    from hermes.simulation import TooShort, plan

    from trader.config import load_strategy_config
    from trader.daemon import RunOptions, Service
    from trader.goals import load_goals
    from trader.localexchange import LocalExchange
    from trader.ohlcv import load_ohlcv

    folder = _fresh_folder(options.folder)
    config_path, goals_path = folder / "config" / "strategy.yaml", folder / "config" / "goals.yaml"
    config_path.parent.mkdir()
    shutil.copyfile(PACKAGE / "strategy.yaml", config_path)
    shutil.copyfile(PACKAGE / "goals.yaml", goals_path)
    config, goals = load_strategy_config(config_path), load_goals(goals_path)
    frame = load_ohlcv(CANDLES, timeframe=config.timeframe)
    try:
        _, ends = plan(frame, config, goals)
    except TooShort as exc:  # only if the bundled files were edited
        raise InputError(f"the demo's candles: {exc}") from None
    weeks = options.weeks or len(ends)
    if weeks > len(ends):
        raise InputError(f"--weeks {weeks}: the bundled candles hold {len(ends)} simulated weeks; expected 1 to {len(ends)}")
    week = ends[1] - ends[0]
    first = ends[0] - week + 1  # the daemon starts a week before Hermes' first review

    exchange = LocalExchange(frame, config.symbol, {"USDT": float(config.capital)}, KEY, SECRET,
                             fee_rate=config.risk.fee).start()
    drive = None
    try:
        _environment(folder, exchange.base_url)
        url = f"sqlite:///{folder / 'trader.db'}"
        print(f"trader demo: the daemon trades {config.symbol} {config.timeframe} through ccxt against a local "
              f"exchange at {exchange.base_url} (play money, no internet), {weeks} simulated week(s) of real 2017 "
              f"candles, Hermes reviewing each week", file=out)
        print(f"  its own folder: {options.folder} (ledger, config, reports); your config and ledger are not touched",
              file=out)
        _approve_live(url, config, config_path, out)
        exchange.clock.set(exchange.candles.open_time(first))
        service = Service(RunOptions(config_path=config_path, goals_path=goals_path, live=True, database_url=url,
                                     port=options.port, settle_seconds=0.0), os.environ, clock=exchange.clock.now)
        print(f"  the dashboard: http://127.0.0.1:{options.port}/ (also /health and /status); Ctrl-C stops", file=out)
        drive = FastForward(service, exchange, first, ends[:weeks], options.speed, folder, out)
        service.run(drive)
    except KeyboardInterrupt:  # before the daemon's own handlers were in place
        pass
    finally:
        exchange.stop()
    return _summary(folder, options.folder, drive.weeks_done if drive else 0, weeks, out)


class FastForward:
    """The demo's driver of the daemon: simulated time, one candle per step, at most `speed`
    candles per second, and the daemon's weekly review at each of `ends` (bar counts, as
    hermes.simulation.plan gives them). Returns when done or when the daemon is told to stop."""

    def __init__(self, service, exchange, first: int, ends: list[int], speed: float | None, folder: Path,
                 out: TextIO):
        self.service, self.exchange, self.first, self.ends = service, exchange, first, ends
        self.speed, self.folder, self.out = speed, folder, out
        self.weeks_done = 0
        self.last_review: int | None = None  # the id of the last review that completed

    def __call__(self) -> None:
        service, candles, clock = self.service, self.exchange.candles, self.exchange.clock
        started, steps, i = time.monotonic(), 0, self.first
        for week, end in enumerate(self.ends, 1):
            while i <= end:  # the candle `i` opens: the daemon decides on the one that closed
                if service.stop.is_set():
                    return
                clock.set(candles.open_time(i))
                service.tick()
                i, steps = i + 1, steps + 1
                if self.speed and service.stop.wait(max(0.0, started + steps / self.speed - time.monotonic())):
                    return
            service.review()  # at the cron's fire time: the candles up to it have closed
            self.weeks_done = week
            self._reviewed(week)
            if week == 1:
                self._approve_hermes()

    def _reviewed(self, week: int) -> None:
        from trader.ledger import store
        from trader.ledger.models import MAIN_BOOK, Review

        with self.service.factory() as s:
            review = s.query(Review).order_by(Review.id.desc()).first()
            equity = store.equity_of(s, MAIN_BOOK)
            fills = len(store.fills_of(s, MAIN_BOOK))
        capital = self.service.config.capital
        last = equity[-1].equity if equity else capital
        line = (f"week {week} to {self.exchange.clock.now():%Y-%m-%d %H:%M} UTC: equity {last:,.2f} "
                f"({last / capital - 1:+.2%}), {fills} fills so far")
        problem = self.service.review_problem
        if problem or review is None or review.id == self.last_review:
            line += f"; {problem}" if problem else "; Hermes' review failed (the log says why)"
        else:
            self.last_review = review.id
            line += f"\n  Hermes review {review.id} ({review.mode.replace('_', '-')}): {_what(review)}"
            if review.report_path:
                line += f"\n  report: {_shown(review.report_path)}"
        print(line, file=self.out, flush=True)

    def _approve_hermes(self) -> None:
        """What `hermes approve --live --yes` records, made here after the first read-only review."""
        from trader.ledger import store
        from trader.ledger.models import Approval, Review

        with self.service.factory.begin() as s:
            if s.query(Review).count() == 0:
                return  # refused, as `hermes approve` refuses before one review has completed
            s.add(Approval(kind="hermes_apply", detail={"live": True, "by": "trader demo"}))
            store.record_event(s, "approval", "Hermes apply mode approved (live inherits) by trader demo")
        print("  the demo approves Hermes' apply mode now, as `hermes approve --live` would after you read the first "
              "report: from the next review Hermes starts experiments and promotes proven changes", file=self.out,
              flush=True)


def _fresh_folder(folder: Path) -> Path:
    """The demo's folder, emptied if an earlier demo made it; any other non-empty folder is refused."""
    path = Path(folder).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise InputError(f"--dir {folder}: is not a folder")
    if path.is_dir() and any(path.iterdir()):
        if not (path / MARKER).exists():
            raise InputError(f"--dir {folder}: is not empty and not an earlier demo's; choose another folder")
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        (path / MARKER).write_text("made by `trader demo`; the next demo in this folder replaces it\n")
    except OSError as exc:
        raise InputError(f"--dir {folder}: cannot be written ({exc.strerror})") from None
    return path


def _environment(folder: Path, exchange_url: str) -> None:
    """The demo's process sees only its own folder and the local exchange."""
    for name in _UNSET:
        os.environ.pop(name, None)
    os.environ.update({"TRADER_DATA_DIR": str(folder), "TRADER_CONFIG_DIR": str(folder / "config"),
                       "TRADER_EXCHANGE_URL": exchange_url, "EXCHANGE_API_KEY": KEY, "EXCHANGE_API_SECRET": SECRET})


def _approve_live(url: str, config, config_path: Path, out: TextIO) -> None:
    """What `trader approve --live --yes` records: the demo trades through the live broker."""
    from trader.ledger import open_ledger, sessions, store
    from trader.ledger.models import Approval

    engine = open_ledger(url)
    with sessions(engine).begin() as s:
        store.ensure_version(s, config, config_path.read_text(encoding="utf-8"))
        s.add(Approval(kind="live", strategy_version=config.version,
                       detail={"symbol": config.symbol, "exchange": "local", "by": "trader demo"}))
        store.record_event(s, "approval", f"live trading on the local exchange approved for version "
                           f"{config.version} by trader demo")
    engine.dispose()
    print(f"  the demo approves live trading of strategy version {config.version} on the local exchange, as "
          "`trader approve --live` would: orders go through ccxt to the exchange, which fills them", file=out)


def _summary(folder: Path, shown: Path, weeks_done: int, weeks: int, out: TextIO) -> int:
    from trader.ledger import open_ledger, sessions, store
    from trader.ledger.models import MAIN_BOOK, Review

    if not (folder / "trader.db").exists():
        print("trader demo stopped before it started", file=out)
        return 0
    engine = open_ledger(f"sqlite:///{folder / 'trader.db'}", migrate=False)
    with sessions(engine)() as s:
        fills = len(store.fills_of(s, MAIN_BOOK))
        modes = [r.mode for r in s.query(Review).order_by(Review.id)]
    engine.dispose()
    done = "finished" if weeks_done == weeks else "stopped"
    print(f"trader demo {done} after {weeks_done} of {weeks} simulated week(s): {fills} fills, {len(modes)} Hermes "
          f"review(s) ({modes.count('read_only')} read-only, {modes.count('apply')} in apply mode)", file=out)
    print(f"  reports: {shown / 'reports'}", file=out)
    print(f"  look around: TRADER_DATA_DIR={shown} trader status (or trader trades, trader report, hermes history)",
          file=out, flush=True)
    return 0


def _what(review) -> str:
    """A review in a line: the verdict, what it decided, what it started (or would have)."""
    result, started = review.result or {}, review.mode == "apply"
    parts = [f"verdict {review.verdict.replace('_', ' ')}" + (f" (weakest: {review.weakest})" if review.weakest else "")]
    decisions = result.get("decisions") or []
    if any(d.get("action") == "continue" for d in decisions):
        parts.append(f"{sum(d.get('action') == 'continue' for d in decisions)} experiment(s) still collecting evidence")
    for d in decisions:
        if d.get("action") not in (None, "none", "continue"):
            unapplied = d["action"] in ("promote", "rollback") and not d.get("applied")
            parts.append(f"{d['action']} {d.get('variable')} = {_num(d.get('value'))}"
                         + (" (read-only: not applied)" if unapplied else ""))
    changes = [f"{p['variable']} {_num(p['baseline_value'])} -> {_num(p['value'])}" for p in result.get("proposals") or []]
    if changes:
        parts.append(("starts experiments: " if started else "would start (read-only): ") + ", ".join(changes))
    return "; ".join(parts)


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _shown(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path

"""The one start-up point: reads the user's files, opens the ledger, and wires the engine
to a clock, a feed and a broker. Live trading, paper trading and replays differ only here.

* `run_replay`: a file on a simulated clock, paper broker, as fast as possible (or paced);
  in trader.replay_runner, with the options both share in trader.runoptions.
* `Service`: APScheduler fires at every candle close (plus a settle delay); the exchange
  feed; the paper broker, or the live one once the live gate is passed; the web server (dashboard, /health, /status).
  Its clock and its driver are the two things a caller may swap: `trader demo` gives it the
  local exchange's market clock and drives ticks and reviews candle by candle (trader.demo).
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import SQLAlchemyError

from . import retry
from .brokers import LiveBroker, PaperBroker
from .config import StrategyConfig, load_strategy_config, parse_strategy_config
from .domain import split_symbol
from .engine import Engine
from .errors import ConfigError, ExchangeError, InputError, OperationalExchangeError, StrategyError, TemporaryExchangeError
from .feeds import ExchangeFeed
from .fillevents import announce as announce_fills, last_announced
from .history import load_history
from .ledger import data_dir, database_url, open_ledger, sessions, store
from .ledger.guard import LedgerGuard
from .ledger.lock import acquire
from .ledger.models import DaemonState, Experiment, StrategyVersion
from .logs import secret_env_values
from .protection import WATCH_SECONDS
from .replay_runner import run_replay
from .risk import Limits, RiskEngine, halt
from .runoptions import RunOptions, load_goals_if_any, lookback_for
from .schedule import CandleCloseTrigger, tick_until_current
from .status import health, snapshot
from .timeframes import timeframe_seconds
from .yamlfile import read_text_file

# what callers import from the start-up point (the CLI, trader.demo, the tests)
__all__ = ["ConfigWatcher", "RunOptions", "Service", "live_gate_problems", "lookback_for", "run_replay"]

log = logging.getLogger("trader.daemon")


# -- the live gate ------------------------------------------------------------------------------


def live_gate_problems(config: StrategyConfig, has_keys: bool, session) -> list[str]:
    """Everything that stands between this daemon and real orders; empty when it may trade."""
    problems = []
    if not has_keys:
        problems.append("the exchange keys are not in the environment (EXCHANGE_API_KEY, EXCHANGE_API_SECRET)")
    approval = store.latest_approval(session, "live")
    if approval is None:
        problems.append(f"live trading has not been approved: run `trader approve --live` (strategy version {config.version})")
    elif approval.strategy_version != config.version:
        problems.append(
            f"the live approval is for strategy version {approval.strategy_version}, but the strategy "
            f"file is now version {config.version} (it was edited): review it and run `trader approve --live` again")
    return problems


# -- watching the strategy file -------------------------------------------------------------


class ConfigWatcher:
    """Notices edits of the strategy file before a tick; a bad edit is reported once and
    the running version keeps trading."""

    def __init__(self, path: Path, text: str):
        self.path = Path(path)
        self.seen = _digest(text)

    def poll(self) -> tuple[StrategyConfig, str] | ConfigError | None:
        try:  # bounded and non-blocking: a FIFO or a huge file swapped in must not stall ticks
            text = read_text_file(self.path)
        except ConfigError as exc:
            text = f"<unreadable: {exc}>"
        digest = _digest(text)
        if digest == self.seen:
            return None
        self.seen = digest
        try:
            return load_strategy_config(self.path), text
        except ConfigError as exc:
            return exc


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


# -- the service ------------------------------------------------------------------------------


class Service:
    """The 24/7 daemon: scheduler, feed, engine, web server (dashboard, health, status), clean shutdown."""

    def __init__(self, options: RunOptions, environ: Mapping[str, str],
                 clock: Callable[[], datetime] | None = None):
        from .exchange import ExchangeAdapter  # ccxt (a second to import): the service only, not replays

        self.options = options
        self.environ = environ
        self.clock = clock or _utcnow  # what "now" is for ticks, reviews and /health
        store.register_secrets(secret_env_values(environ))
        text = Path(options.config_path).read_text(encoding="utf-8")
        self.config = load_strategy_config(options.config_path)
        self.goals = load_goals_if_any(options.goals_path)
        self.watcher = ConfigWatcher(options.config_path, text)
        url = options.database_url or database_url(environ)
        engine = open_ledger(url, keep_damaged=True)  # a damaged file: kept aside, one line, exit 2
        self.ledger = LedgerGuard(url)
        self.lock = acquire(engine, options.book)  # before anything is traded
        self.factory = sessions(engine)
        self.adapter = ExchangeAdapter.from_env(self.config.exchange, self.config.symbol, environ=environ)
        self.stop = threading.Event()
        self.review_problem: str | None = None  # why the last review did not complete (the demo prints it)
        self.engine_lock = threading.Lock()  # the tick and the price watch share the engine's session
        self.timeframe = timeframe_seconds(self.config.timeframe)
        if options.live:
            with self.factory() as s:
                problems = live_gate_problems(self.config, self.adapter.has_credentials(), s)
            if problems:
                raise InputError("live trading refused:\n  - " + "\n  - ".join(problems)
                                 + "\nnothing was traded; without --live the daemon trades on paper")
        self.engine = self._build_engine(text)
        self.engine.before_order = self.ledger.before_order  # no order on a ledger found damaged
        self.shadows: dict[str, Engine] = {}
        with self.factory() as s:
            self.fills_announced = last_announced(s, options.book)  # fills become `fill` events after a tick

    def _build_engine(self, text: str) -> Engine:
        base, quote = split_symbol(self.config.symbol)
        limits, round_amount = Limits(), None
        try:
            rules = self.adapter.market_rules()
            limits = Limits(rules.amount_step, rules.min_amount, rules.min_notional)
            if self.options.live:
                round_amount = self.adapter.round_amount
        except (TemporaryExchangeError, OperationalExchangeError) as exc:
            if self.options.live:  # the user's to fix (network, exchange, symbol): one line, exit 2
                raise InputError(f"live trading refused: cannot load the market rules of {self.config.symbol} from "
                                 f"{self.config.exchange}: {store.scrub(str(exc))}; check the network and the "
                                 "exchange's status (and TRADER_EXCHANGE_URL, if set); nothing was traded; "
                                 + OFFLINE_HINT) from None
            log.warning("market limits unavailable, paper trading without them: %s (%s)", exc, OFFLINE_HINT)
        broker = LiveBroker(self.adapter, base, quote) if self.options.live else PaperBroker(quote)
        self.limits = limits
        risk = RiskEngine(self.config, self.goals, limits, round_amount)
        self.feed = ExchangeFeed(self.adapter, self.config.timeframe, lookback_for(self.config))
        return Engine(config=self.config, goals=self.goals, sessions=self.factory, broker=broker,
                      risk=risk, book=self.options.book, yaml_text=text)

    def settle_pending(self, budget: float = 65.0, wait: Callable[[float], bool] | None = None) -> bool:
        """Reconcile orders an earlier run (or a failed call) left open, waiting up to `budget`
        seconds for a request that may still reach the exchange. True when nothing is left
        in doubt; otherwise the next tick (or start) looks again."""
        wait = wait or self.stop.wait  # returns True when the daemon is told to stop
        deadline = time.monotonic() + budget
        while (left := self.engine.resolve_pending()) is not None:
            pause = min(max(left, 0.5), deadline - time.monotonic())
            if pause <= 0:
                return False
            log.info("waiting %.1f s for the outcome of an order", pause, extra={"event": "reconcile_wait"})
            if wait(pause):
                return False
        return True

    # -- one scheduled tick ----------------------------------------------------------------
    def tick(self) -> None:
        """One tick, never on a ledger that is damaged (halted for good) or cannot be written
        (the error is what /status and /health say until a tick writes again)."""
        if not self.ledger.usable():
            return
        try:
            with self.engine_lock:
                self._tick()
        except SQLAlchemyError as exc:
            self.engine._maybe_pending = True  # a fill may have missed the ledger: reconcile next tick
            self.ledger.failed(exc)
        else:
            self.ledger.written()

    def watch(self) -> None:
        """Between candle closes, where no stop rests on the exchange: the last price against
        the stop level (trader.protection)."""
        if self.engine.protection is None or not self.ledger.usable():
            return
        try:
            with self.engine_lock:
                self.engine.protection.watch(self.adapter.fetch_price, self.clock())
        except SQLAlchemyError as exc:
            self.ledger.failed(exc)
        except ExchangeError as exc:  # the tick reconciles; the next look is seconds away
            log.warning("price watch: %s", store.scrub(str(exc)), extra={"event": "watch_failed"})

    def _tick(self) -> None:
        self._reload_config()
        try:  # temporary exchange errors: retried, backing off up to a quarter candle
            retry.call(self._tick_once, attempts=5, first=2.0, cap=self.timeframe / 4,
                       retry_on=TemporaryExchangeError, stop=self.stop, on_retry=self._retrying)
        except retry.Stopped:
            return
        except TemporaryExchangeError as exc:
            self._note_error(str(exc))
            log.error("tick gave up after repeated temporary errors; the next candle tries again (%s)", OFFLINE_HINT)
        except (OperationalExchangeError, StrategyError) as exc:
            self._halt(f"{exc.__class__.__name__}: {exc}")
        except SQLAlchemyError:
            raise  # the ledger's trouble: tick() says it where the ledger cannot
        except Exception as exc:  # keep the daemon alive; the next candle tries again
            log.exception("tick failed: %s", exc.__class__.__name__, extra={"event": "error"})
            self._note_error(f"{exc.__class__.__name__}: {exc}")

    def _tick_once(self) -> None:
        now = self.clock()
        view = self.feed.view(now)
        report = self.engine.tick(view, now=now)
        self.fills_announced = announce_fills(self.factory, self.options.book, self.fills_announced)
        self._tick_shadows(view)
        self._note_error(None)
        if not report.skipped:
            log.info("tick %s: equity %.2f, target %.2f, %s", report.bar_time.isoformat(), report.equity,
                     report.target, report.state, extra={"event": "tick", "orders": report.orders})

    def _retrying(self, exc: BaseException, attempt: int, wait: float) -> None:
        log.warning("temporary exchange error (attempt %d): %s; retrying in %.0f s", attempt, exc, wait,
                    extra={"event": "retry"})
        self._note_error(str(exc))

    # -- Hermes: shadow challengers and the weekly review -----------------------------------
    def _sync_shadows(self) -> None:
        """Paper engines for the running experiments: each challenger and its control book (the
        baseline on paper), on the same candles, whether or not the main book is halted."""
        with self.factory() as s:
            running = {}
            for e in s.query(Experiment).filter_by(status="running"):
                running[e.book] = s.get(StrategyVersion, e.challenger_version).settings
                if e.control_book:
                    running[e.control_book] = s.get(StrategyVersion, e.baseline_version).settings
        for book in [b for b in self.shadows if b not in running]:
            self.shadows.pop(book).close()
        for book, settings in running.items():
            if book not in self.shadows:
                config = parse_strategy_config(dict(settings), f"<challenger {book}>")
                _, quote = split_symbol(config.symbol)
                self.shadows[book] = Engine(config=config, goals=None, sessions=self.factory,
                                            broker=PaperBroker(quote), risk=RiskEngine(config, None, self.limits),
                                            book=book)

    def _tick_shadows(self, view) -> None:
        self._sync_shadows()
        for book, engine in self.shadows.items():
            try:
                engine.tick(view)
            except Exception as exc:  # a challenger's trouble never stops the baseline
                log.warning("shadow book %s: %s: %s", book, exc.__class__.__name__, exc,
                            extra={"event": "shadow_error"})

    def review(self) -> None:
        """The weekly Hermes cycle, in the daemon's own process (the ledger is the daemon's)."""
        from hermes.cycle import CycleInputs, run_cycle  # the review's libraries: only when it runs
        from hermes.proposer import warmup_needed

        if self.goals is None:
            self.review_problem = "no goals file: Hermes has nothing to review against"
            log.warning(self.review_problem, extra={"event": "review_skipped"})
            return
        try:
            now = self.clock()
            load_strategy_config(self.options.config_path)  # a refused edit: skipped before any download
            ohlcv = load_history(self.config, self.goals.review.lookback_days, now, None,
                                 warmup_bars=warmup_needed(self.config))
            run_cycle(self.factory, CycleInputs(config_path=Path(self.options.config_path), goals=self.goals,
                                                ohlcv=ohlcv, data_dir=data_dir(), now=now, environ=os.environ))
            self._sync_shadows()
        except InputError as exc:  # the user's to fix (an edit of the strategy file that was refused): no traceback
            problem = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            self.review_problem = (f"Hermes' review skipped: {problem}; the daemon keeps trading version "
                                   f"{self.config.version}, and the review runs at its next scheduled time "
                                   f"({self.goals.review.cron}) once this is fixed")
            log.error("%s", self.review_problem, extra={"event": "review_skipped"})
            with self.factory.begin() as s:
                store.record_event(s, "review_skipped", self.review_problem, self.options.book)
        except Exception as exc:
            self.review_problem = f"Hermes' review failed: {exc.__class__.__name__}: {store.scrub(str(exc))}"
            log.exception("Hermes review failed: %s", exc.__class__.__name__, extra={"event": "review_failed"})
            with self.factory.begin() as s:
                store.record_event(s, "review_failed", f"{exc.__class__.__name__}: {exc}", self.options.book)
        else:
            self.review_problem = None

    def _reload_config(self) -> None:
        change = self.watcher.poll()
        if change is None:
            return
        with self.factory.begin() as s:
            if isinstance(change, ConfigError):
                store.record_event(s, "config_rejected", str(change), self.options.book)
                log.error("strategy file edit rejected, still trading version %s:\n%s", self.config.version, change,
                          extra={"event": "config_rejected"})
                return
            config, text = change
            if config.version == self.config.version:
                return
            problems = live_gate_problems(config, self.adapter.has_credentials(), s) if self.options.live else []
        self.config = config
        self.engine.use_config(config, text)
        self.engine.trading_paused = "; ".join(problems) or None
        if problems:
            with self.factory.begin() as s:
                store.record_event(s, "awaiting_approval", self.engine.trading_paused, self.options.book)
            log.warning("new strategy version %s trades nothing new until approved: %s", config.version,
                        self.engine.trading_paused, extra={"event": "awaiting_approval"})

    def _note_error(self, message: str | None) -> None:
        with self.factory.begin() as s:
            state = s.get(DaemonState, self.options.book)
            message = store.scrub(message)
            if state is not None and state.last_error != message:
                state.last_error = message

    def _halt(self, reason: str) -> None:
        with self.factory.begin() as s:
            halt(s, self.options.book, reason, operational=True)
        log.error("HALTED: %s", store.scrub(reason), extra={"event": "halted"})

    # -- lifecycle -------------------------------------------------------------------------
    def add_jobs(self, scheduler, now: datetime):
        """The tick job (and Hermes' review); returns the tick job."""
        trigger = CandleCloseTrigger(self.timeframe, self.options.settle_seconds)
        clock = self.clock
        # one job, so ticks never overlap; its first run is now, to catch up on the last close
        job = scheduler.add_job(tick_until_current, trigger, args=(self.tick, trigger, clock, self.stop.is_set),
                                id="tick", max_instances=1, coalesce=True,
                                misfire_grace_time=max(30, self.timeframe // 2), next_run_time=now)
        if self.options.live:  # seconds, not a candle, between a crash and the exit (trader.protection)
            scheduler.add_job(self.watch, IntervalTrigger(seconds=WATCH_SECONDS), id="watch", max_instances=1,
                              coalesce=True, misfire_grace_time=WATCH_SECONDS)
        if self.goals is not None:
            scheduler.add_job(self.review, CronTrigger.from_crontab(self.goals.review.cron, timezone=timezone.utc),
                              id="hermes", max_instances=1, coalesce=True, misfire_grace_time=6 * 3600)
        return job

    def run(self, drive: Callable[[], None] | None = None) -> int:
        """Serve the dashboard (with /health and /status), reconcile, then tick until stopped: on the wall clock by APScheduler
        (`schedule`), or by `drive`, which returns once `self.stop` is set or it is done."""
        from .notify import Notifier, NotifyHandler  # httpx: only a running service notifies

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())
        # fills, halts, errors and reviews go to the webhook; a dead webhook never blocks a tick
        notifier = Notifier.from_env(self.environ)
        forward = NotifyHandler(notifier)
        logging.getLogger().addHandler(forward)
        telegram = self._telegram(NotifyHandler)
        server = None
        if self.options.port is not None:
            book, tf, settle = self.options.book, self.timeframe, self.options.settle_seconds

            def status_now() -> dict:
                with self.factory() as s:
                    return snapshot(s, book)

            def health_now() -> tuple[bool, str]:
                with self.factory() as s:
                    return health(s, book, tf, now=self.clock(), settle_seconds=settle)

            from .web import Site, serve  # starlette and uvicorn: only a running service serves

            server = serve(Site(self.ledger.status(status_now, book), self.ledger.health(health_now), self.factory,
                                book, Path(self.options.config_path), data_dir(),
                                self.environ.get("TRADER_DASHBOARD_TOKEN") or None), self.options.port)
            log.info("dashboard, health and status on port %d%s", server.port,
                     "" if self.environ.get("TRADER_DASHBOARD_TOKEN") else " (read-only: no TRADER_DASHBOARD_TOKEN)",
                     extra={"event": "http_started"})
        with self.factory.begin() as s:
            store.record_event(s, "started", f"{'live' if self.options.live else 'paper'} trading "
                               f"{self.config.symbol} {self.config.timeframe} with version {self.config.version}",
                               self.options.book)
        log.info("started: %s %s on %s, %s mode, strategy version %s", self.config.strategy, self.config.symbol,
                 self.config.exchange, "live" if self.options.live else "paper", self.config.version,
                 extra={"event": "started"})
        self.settle_pending()  # reconcile before anything new is decided
        try:
            (drive or self.schedule)()
        finally:
            try:  # leave nothing in doubt if a few seconds settle it (Docker's stop allows 10)
                self.settle_pending(budget=_STOP_SETTLE_SECONDS, wait=lambda pause: bool(time.sleep(pause)))
            except Exception as exc:  # the next start reconciles
                log.warning("orders not settled at stop: %s: %s", exc.__class__.__name__, exc)
            if server is not None:
                server.stop()
            try:
                with self.factory.begin() as s:
                    store.record_event(s, "stopped", "stopped by signal" if self.stop.is_set()
                                       else "stopped: the run came to its end", self.options.book)
            except Exception as exc:  # a full disk, a damaged ledger: the stop itself goes on
                log.warning("the stop is not in the ledger: %s", exc.__class__.__name__)
            self.lock.release()
            log.info("stopped", extra={"event": "stopped"})
            logging.getLogger().removeHandler(forward)
            notifier.close(2.0)
            if telegram is not None:
                logging.getLogger().removeHandler(telegram[1])
                telegram[0].close(2.0)
        return 0

    def _telegram(self, handler_class):
        """With TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID: the bot, started, and its log handler."""
        from .telegram import Answers, TelegramBot  # only a running service talks to Telegram

        bot = TelegramBot.from_env(self.environ, Answers(self.factory, self.options.book,
                                                         Path(self.options.config_path), data_dir()))
        if bot is None:
            return None
        handler = handler_class(bot)  # the events the webhook gets: fills, halts, errors, reviews
        logging.getLogger().addHandler(handler)
        return bot.start(), handler

    def schedule(self) -> None:
        """The wall clock: APScheduler runs the tick at every candle close, and Hermes' review
        at its cron, until the daemon is told to stop."""
        from apscheduler.schedulers.background import BackgroundScheduler  # not for a driven clock (the demo)

        scheduler = BackgroundScheduler(timezone=timezone.utc)
        self.add_jobs(scheduler, datetime.now(timezone.utc))
        scheduler.start()
        try:
            while not self.stop.wait(1.0):
                pass
        finally:
            log.info("stopping: waiting for the running tick to finish", extra={"event": "stopping"})
            scheduler.shutdown(wait=True)


OFFLINE_HINT = "no exchange within reach? `trader demo` shows the bot at work offline"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


_STOP_SETTLE_SECONDS = 8.0


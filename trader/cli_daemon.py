"""`trader run`, `status`, `halt`, `resume`, `approve`: the daemon's commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .configdir import default_path
from .errors import InputError


def add_commands(sub) -> None:
    run = sub.add_parser("run", help="run the daemon (paper unless --live)")
    _files(run)
    run.add_argument("--live", action="store_true", help="trade real money (needs keys and `trader approve --live`)")
    run.add_argument("--replay", metavar="FILE", help="replay an OHLCV file through the engine on a simulated clock")
    run.add_argument("--speed", default="max", help="replay pace: 'max' or bars per second (default: max)")
    run.add_argument("--settle", type=float, default=5.0, help="seconds after a candle closes before the tick (default: 5)")
    run.add_argument("--log-json", action="store_true", default=None, help="JSON log lines (default in containers)")
    run.add_argument("--log-text", dest="log_json", action="store_false", help="plain text log lines")
    run.add_argument("--verbose", action="store_true",
                     help="also the libraries' INFO lines (migrations, scheduler, HTTP); default: their warnings only")
    run.set_defaults(handler=_run)

    demo = sub.add_parser("demo", help="see it work, offline: the daemon and Hermes against a local exchange, "
                          "a simulated week every few seconds")
    demo.add_argument("--weeks", type=int, help="stop after this many simulated weeks (default: all the bundled "
                      "candles hold, 12)")
    demo.add_argument("--speed", default="50", help="candles per second, or 'max' (default: 50, a simulated week "
                      "in about 3 s)")
    demo.add_argument("--dir", default="data/demo", help="the demo's own folder: ledger, config copies, reports; an "
                      "earlier demo's is replaced (default: %(default)s)")
    demo.add_argument("--verbose", action="store_true", help="also the daemon's log: every tick and order (stderr)")
    demo.set_defaults(handler=_demo)

    status = sub.add_parser("status", help="what the daemon is doing, from the ledger")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(handler=_status)

    trades = sub.add_parser("trades", help="the closed round trips: entry, exit, return, fees, what closed them")
    trades.add_argument("--json", action="store_true", help="print one JSON list")
    trades.set_defaults(handler=_trades)

    halt = sub.add_parser("halt", help="stop new trading (the running daemon obeys at its next tick)")
    halt.add_argument("--reason", default="halted by hand", help="why, shown by status and /health (default: %(default)s)")
    halt.set_defaults(handler=lambda a: _set_state("halted", a.reason))
    resume = sub.add_parser("resume", help="resume trading after a halt, with the fix Hermes' review proposed "
                            "(apply mode only)")
    resume.add_argument("--keep", action="store_true", help="resume the current strategy version, without the fix")
    resume.add_argument("--config", default=default_path("strategy.yaml"),
                        help="the strategy file the fix rewrites (default: %(default)s)")
    resume.set_defaults(handler=_resume)

    report = sub.add_parser("report", help="show the latest Hermes report")
    report.add_argument("--id", type=_review_number, help="a review number (default: the latest)")
    report.add_argument("--markdown", action="store_true", help="print the report's Markdown as written")
    report.set_defaults(handler=_report)

    approve = sub.add_parser("approve", help="approve live trading of the exact current strategy version")
    approve.add_argument("--live", action="store_true", required=True, help="approve live trading")
    approve.add_argument("--config", default=default_path("strategy.yaml"), help="strategy YAML (default: %(default)s)")
    approve.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    approve.set_defaults(handler=_approve)


def _review_number(text: str) -> int:
    """A positive integer the ledger can hold (a 400-digit id overflowed SQLite's INTEGER)."""
    if not text.isdigit() or not 1 <= int(text[:20]) < 2**63:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a review number (1, 2, ...)")
    return int(text)


def _files(parser) -> None:
    parser.add_argument("--config", default=default_path("strategy.yaml"), help="strategy YAML (default: %(default)s)")
    parser.add_argument("--goals", default=default_path("goals.yaml"), help="goals YAML (default: %(default)s)")


def _run(args: argparse.Namespace) -> int:
    from .daemon import RunOptions, Service, run_replay
    from .logs import default_json, quiet_libraries, setup_logging

    # a replay's result is its JSON summary on stdout (`| jq`); its log lines go to stderr
    setup_logging(json_lines=default_json() if args.log_json is None else args.log_json,
                  stream=sys.stderr if args.replay else None)
    quiet_libraries(args.verbose)
    speed = None
    if args.speed != "max":
        try:
            speed = float(args.speed)
            if not 0.001 <= speed <= 1e6:  # also refuses nan; 1e-300 overflowed the pacing sleep
                raise ValueError
        except ValueError:
            raise InputError(f"--speed: {args.speed!r} is not 'max' or a number of bars per second "
                             "from 0.001 to 1000000") from None
    options = RunOptions(
        config_path=Path(args.config),
        goals_path=Path(args.goals) if args.goals else None,
        live=args.live,
        replay=Path(args.replay) if args.replay else None,
        speed=speed,
        settle_seconds=args.settle,
    )
    if options.replay:
        if options.live:
            raise InputError("--replay and --live exclude each other: a replay always trades on paper")
        import signal
        import threading

        stop = threading.Event()

        def stop_between_ticks() -> None:  # until the data is loaded, a signal ends the process
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())

        from sqlalchemy.exc import SQLAlchemyError

        try:
            summary = run_replay(options, stop, loaded=stop_between_ticks)
        except SQLAlchemyError as exc:  # a full disk, a ledger gone bad: say it without a traceback
            print(f"error: the replay's ledger cannot be written: {_db_reason(exc)}", file=sys.stderr)
            return 1
        print(json.dumps(summary, default=str))
        return 0
    from .configdir import sync_deployed
    from .health import port_from_env

    try:
        sync_deployed(os.environ)  # a container: the deployed files onto the volume, if they changed
    except OSError as exc:
        raise InputError(f"cannot bring the deployed strategy and goals files into "
                         f"{os.environ.get('TRADER_CONFIG_DIR')}: {exc}") from None
    options = RunOptions(**{**options.__dict__, "port": port_from_env()})
    return Service(options, os.environ).run()


def _demo(args: argparse.Namespace) -> int:
    from .demo import DemoOptions, run_demo
    from .health import port_from_env
    from .logs import quiet_libraries, setup_logging

    if args.weeks is not None and args.weeks < 1:
        raise InputError(f"--weeks {args.weeks}: expected a number of weeks, 1 or more")
    speed = None if args.speed == "max" else _speed(args.speed)
    # the demo's own lines on stdout; the daemon's log on stderr, its warnings only unless --verbose
    setup_logging(json_lines=False, level="INFO" if args.verbose else "WARNING", stream=sys.stderr)
    quiet_libraries(args.verbose)
    return run_demo(DemoOptions(folder=Path(args.dir), weeks=args.weeks, speed=speed, port=port_from_env()))


def _speed(text: str) -> float:
    try:
        speed = float(text)
        if not 0.001 <= speed <= 1e6:  # also refuses nan
            raise ValueError
    except ValueError:
        raise InputError(f"--speed: {text!r} is not 'max' or a number of candles per second from 0.001 to 1000000") \
            from None
    return speed


def _db_reason(exc: Exception) -> str:
    """The database's own words (sqlite's 'database or disk is full'), without the SQL."""
    return str(getattr(exc, "orig", None) or exc.__class__.__name__).splitlines()[0][:200]


def _ledger():
    from .ledger import open_ledger, sessions

    return sessions(open_ledger())


def _liveness(factory, book: str, snap: dict) -> dict:
    """Whether a daemon trades this book now (it holds the book's lock), and when one was last
    seen: the ledger's state alone says 'running' long after a daemon stopped."""
    from datetime import datetime, timezone

    from .ledger.lock import daemon_alive

    alive, holder = daemon_alive(factory.kw["bind"], book)
    if alive:
        return {"alive": True, "holder": holder or None, "last_seen": datetime.now(timezone.utc)}
    seen = [t for t in (snap.get("last_tick"), (snap.get("last_event") or {}).get("time")) if t is not None]
    return {"alive": alive, "holder": None, "last_seen": max(seen) if seen else None}


def _status(args: argparse.Namespace) -> int:
    from .ledger.models import MAIN_BOOK
    from .status import snapshot

    from sqlalchemy.exc import SQLAlchemyError

    try:
        factory = _ledger()
        with factory() as s:
            snap = snapshot(s, MAIN_BOOK)
        snap["daemon"] = _liveness(factory, MAIN_BOOK, snap)
    except SQLAlchemyError as exc:  # e.g. "database is locked" by a long write elsewhere
        print(f"error: the ledger cannot be read now: {_db_reason(exc)}; try again", file=sys.stderr)
        return 1
    if args.json:
        from .health import dumps  # only for --json

        print(dumps(snap))
        return 0
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title="trader status", show_header=False)
    table.add_column("field")
    table.add_column("value")
    daemon = snap["daemon"]
    table.add_row("daemon", Text("running" + (f" ({daemon['holder']})" if daemon["holder"] else "") if daemon["alive"]
                                 else "unknown (no lock on this database)" if daemon["alive"] is None
                                 else "not running" + (f", last seen {daemon['last_seen']:%Y-%m-%d %H:%M:%S} UTC"
                                                       if daemon["last_seen"] else "")))
    for key in ("mode", "state", "reason", "strategy_version", "symbol", "equity", "cash", "last_bar", "last_tick", "last_error"):
        if key in snap and snap[key] is not None:
            amount = key in ("equity", "cash") and isinstance(snap[key], (int, float))
            value = f"{snap[key]:,.2f}" if amount else str(snap[key])  # money as the P&L shows it
            if key == "state" and daemon["alive"] is False and value != "never started":
                value += " (trading state; no daemon is running)"
            table.add_row(key.replace("_", " "), Text(value))  # Text: never read as markup
    for currency, amount in (snap.get("fee_balances") or {}).items():
        table.add_row(f"{currency} (pays fees)", f"{amount:.8f}")
    if snap.get("pnl"):
        p = snap["pnl"]
        table.add_row("P&L", f"realised {p['realised']:+,.2f}, unrealised {p['unrealised']:+,.2f}, fees {p['fees']:,.2f}")
    if "position" in snap:
        pos = snap["position"]
        table.add_row("position", f"{pos['qty']:.8f}" + (f" @ {pos['entry_price']:.2f}" if pos["entry_price"] else ""))
    if guard := snap.get("protection"):  # the sentence the dashboard shows too (trader.protection_status)
        table.add_row("protection", Text(guard["summary"]))
    if snap.get("last_event"):
        ev = snap["last_event"]
        table.add_row("last event", Text(f"{ev['time']:%Y-%m-%d %H:%M} {ev['kind']}: {ev['message']}"))
    Console().print(table)
    return 0


def _trades(args: argparse.Namespace) -> int:
    from .domain import split_symbol
    from .health import dumps
    from .ledger import store
    from .ledger.models import MAIN_BOOK
    from .trades import round_trips

    with _ledger()() as s:
        position = s.get(store.Position, MAIN_BOOK)
        trips = round_trips(store.fills_of(s, MAIN_BOOK), split_symbol(position.symbol)[0]) if position else []
    closed = [t for t in trips if t.exit_time is not None]
    if args.json:
        print(dumps([t.to_dict() for t in closed]))
        return 0
    if not closed:
        print("no closed trades yet" + (" (one is open)" if trips else ""))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(closed)} closed trades")
    for name in ("entry", "exit", "qty", "entry price", "exit price", "return", "P&L", "fees", "closed by"):
        table.add_column(name, justify="left" if name in ("entry", "exit", "closed by") else "right")
    for t in closed:
        table.add_row(f"{t.entry_time:%Y-%m-%d %H:%M}", f"{t.exit_time:%Y-%m-%d %H:%M}", f"{t.qty:.8f}",
                      f"{t.entry_price:,.2f}", f"{t.exit_price:,.2f}", f"{t.ret * 100:+.2f}%", f"{t.pnl:+,.2f}",
                      f"{t.fees:,.2f}", t.reason.replace("_", "-"))
    Console(width=None if sys.stdout.isatty() else 140).print(table)  # a pipe gets every column whole
    wins = sum(t.pnl > 0 for t in closed)
    print(f"total P&L {sum(t.pnl for t in closed):+,.2f}, fees {sum(t.fees for t in closed):,.2f}, "
          f"{wins} of {len(closed)} won" + ("; a trade is open (trader status)" if len(trips) > len(closed) else ""))
    return 0


def _report(args: argparse.Namespace) -> int:
    from .ledger.models import Review

    with _ledger()() as s:
        query = s.query(Review)
        review = s.get(Review, args.id) if args.id else query.order_by(Review.id.desc()).first()
        if review is None:
            raise InputError(f"no Hermes review {'#' + str(args.id) + ' ' if args.id else ''}in the ledger yet: "
                             "the daemon runs one every week, or run `hermes review`")
        markdown, result, path = review.report_markdown, dict(review.result), review.report_path
    if args.markdown:
        print(markdown or "")
        return 0
    from hermes.report import render_terminal
    from hermes.types import CycleResult

    render_terminal(CycleResult.model_validate(result))
    if path:
        print(f"full report: {path}")
    return 0


def _resume(args: argparse.Namespace) -> int:
    """Apply the fix Hermes proposed while the book was halted (unless --keep), then resume."""
    from datetime import datetime, timezone

    from .ledger import data_dir
    from .ledger.models import MAIN_BOOK

    from .ledger.models import DaemonState
    from .risk import halted_reason

    factory = _ledger()
    with factory() as s:
        if s.get(DaemonState, MAIN_BOOK) is not None and halted_reason(s, MAIN_BOOK) is None:
            print("not halted: nothing to resume")  # nothing recorded, the drawdown's peak kept
            return 0
        maybe = _fix_may_be_pending(s, MAIN_BOOK)
    if not maybe:
        return _set_state("running", None, factory)
    from hermes.apply import resume_book

    try:
        print(resume_book(factory, Path(args.config), data_dir(), MAIN_BOOK, datetime.now(timezone.utc),
                          keep=args.keep))
    except LookupError as exc:
        raise InputError(str(exc)) from None
    return 0


def _fix_may_be_pending(s, book: str) -> bool:
    """What `hermes.apply.pending_fix` requires before it looks further: a halted book,
    approved apply mode, and a latest review in apply mode that proposed a fix. Without them
    Hermes, whose import is a third of `trader resume`'s time, has nothing to apply."""
    from sqlalchemy import select

    from .ledger import store
    from .ledger.models import Review
    from .risk import halted_reason

    if halted_reason(s, book) is None or store.latest_approval(s, "hermes_apply") is None:
        return False
    review = s.scalars(select(Review).order_by(Review.id.desc())).first()
    return review is not None and review.mode == "apply" and bool((review.result or {}).get("fix"))


def _set_state(state: str, reason: str | None, factory=None) -> int:
    from .ledger.models import MAIN_BOOK
    from .risk import halt, resume

    try:
        with (factory or _ledger()).begin() as s:
            if state == "halted":
                halt(s, MAIN_BOOK, reason or "halted by hand")
            else:
                resume(s, MAIN_BOOK, reason)
    except LookupError as exc:
        raise InputError(str(exc)) from None
    print("halted: the daemon places no new orders from its next tick" if state == "halted"
          else "resumed: the daemon trades again from its next tick")
    return 0


def _approve(args: argparse.Namespace) -> int:
    from .config import load_strategy_config
    from .ledger import store
    from .ledger.models import Approval

    config = load_strategy_config(args.config)
    risk = config.risk
    lines = [
        f"LIVE trading approval for strategy version {config.version}",
        f"  market:   {config.symbol} on {config.exchange}, {config.timeframe} candles",
        f"  strategy: {config.strategy} {json.dumps(config.params.model_dump())}",
        f"  risk:     stake {risk.stake_fraction:.0%} of equity, stop-loss "
        f"{'off' if risk.stop_loss is None else f'{risk.stop_loss:.1%}'}, take-profit "
        f"{'off' if risk.take_profit is None else f'{risk.take_profit:.1%}'}, fee {risk.fee:.3%}, slippage {risk.slippage:.3%}",
        "Real orders with real money. Editing the strategy file later needs a new approval.",
    ]
    print("\n".join(lines))
    if not args.yes:
        if not sys.stdin.isatty():
            raise InputError("not confirmed: run in a terminal to answer, or pass --yes")
        from .prompt import answer

        if answer(f"Type the version ({config.version}) to approve") != config.version:
            print("not approved")
            return 1
    with _ledger().begin() as s:
        store.ensure_version(s, config, Path(args.config).read_text(encoding="utf-8"))
        s.add(Approval(kind="live", strategy_version=config.version, detail={"symbol": config.symbol,
                                                                            "exchange": config.exchange}))
        store.record_event(s, "approval", f"live trading approved for version {config.version}")
    print(f"approved: `trader run --live` may trade version {config.version}")
    return 0

"""The `hermes` command: review now, approve apply mode, history, rollback."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from trader.cliutil import dispatch, parse_time
from trader.configdir import default_path
from trader.errors import DataError, InputError


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch(_parser(), argv)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hermes",
        description="Hermes reviews the daemon's results against your goals and proposes a change to one "
        "strategy variable at a time. It only observes and reports until you run `hermes approve`.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    review = sub.add_parser("review", help="run a review cycle now")
    _files(review)
    review.add_argument("--data", help="OHLCV file for the walk-forward backtests (default: download via ccxt)")
    review.add_argument("--now", help="review as of this time (ISO 8601; default: now)")
    review.add_argument("--json", action="store_true", help="print the cycle's result as one JSON object")
    review.set_defaults(handler=_review)

    simulate = sub.add_parser("simulate", help="run the daemon and Hermes' weekly reviews over a history file, "
                              "in fast-forward, against a fixed baseline and naive weekly re-optimisation")
    _files(simulate)
    simulate.add_argument("--data", required=True, help="OHLCV file (CSV or Parquet) in the strategy's timeframe")
    simulate.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    simulate.set_defaults(handler=_simulate)

    approve = sub.add_parser("approve", help="let Hermes apply proven changes (after one read-only review)")
    approve.add_argument("--live", action="store_true", help="promoted versions inherit the live approval")
    approve.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    approve.add_argument("--revoke", action="store_true", help="return to read-only mode")
    approve.set_defaults(handler=_approve)

    history = sub.add_parser("history", help="strategy versions, experiments and reviews")
    history.add_argument("--json", action="store_true", help="print versions, experiments and reviews as one JSON object")
    history.set_defaults(handler=_history)

    rollback = sub.add_parser("rollback", help="restore an earlier strategy version into the strategy file")
    rollback.add_argument("version", help="a strategy version id, as `hermes history` lists it")
    rollback.add_argument("--config", default=default_path("strategy.yaml"),
                          help="the strategy file to restore it into (default: %(default)s)")
    rollback.set_defaults(handler=_rollback)
    return parser


def _files(parser) -> None:
    parser.add_argument("--config", default=default_path("strategy.yaml"), help="strategy YAML (default: %(default)s)")
    parser.add_argument("--goals", default=default_path("goals.yaml"), help="goals YAML (default: %(default)s)")


def _ledger():
    from trader.ledger import open_ledger, sessions

    return sessions(open_ledger())


def _review(args: argparse.Namespace) -> int:
    from trader.config import load_strategy_config
    from trader.goals import load_goals
    from trader.history import load_history
    from trader.ledger import data_dir

    from .cycle import CycleInputs, run_cycle
    from .proposer import warmup_needed

    goals = load_goals(args.goals)
    config = load_strategy_config(args.config)
    now = _parse_now(args.now)
    from trader import terminal

    try:
        ohlcv = load_history(config, goals.review.lookback_days, now, args.data, warmup_bars=warmup_needed(config))
    except DataError as exc:
        if args.data:
            raise
        raise DataError(f"{exc}; no exchange within reach? `hermes review --data FILE` reviews from a candle file "
                        "(CSV or Parquet, e.g. one `trader data download` saved)") from None
    with terminal.bar("walk-forward backtests") as advance:
        result = run_cycle(_ledger(), CycleInputs(config_path=Path(args.config), goals=goals, ohlcv=ohlcv,
                                                  data_dir=data_dir(), now=now, environ=os.environ,
                                                  progress=advance))
    if args.json:
        print(json.dumps(result.model_dump(mode="json")))
    else:
        from .report import render_terminal

        render_terminal(result)
        print(f"report: {result.report_path}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from trader import terminal
    from trader.config import load_strategy_config
    from trader.goals import load_goals
    from trader.ledger import data_dir
    from trader.ohlcv import load_ohlcv

    from . import simreport
    from .simulation import TooShort, simulate

    goals = load_goals(args.goals)
    config = load_strategy_config(args.config)
    frame = load_ohlcv(args.data, timeframe=config.timeframe)
    stamp = datetime.now(timezone.utc)
    reports = data_dir() / "reports"
    settings = {"data": str(args.data), "config": str(args.config), "goals": str(args.goals)}
    with tempfile.TemporaryDirectory(prefix="hermes-simulate-") as work:
        strategy = Path(work) / "strategy.yaml"  # Hermes rewrites this copy, never the user's file
        shutil.copyfile(args.config, strategy)
        try:
            with terminal.bar("simulating") as advance:
                result = simulate(frame, strategy, goals, Path(work), progress=advance)
        except TooShort as exc:
            raise InputError(f"{args.data}: {exc}") from None
        data, path = simreport.write(result, settings, reports, stamp)
    if args.json:
        print(json.dumps(data, default=str))
        return 0
    for policy in ("hermes", "fixed", "reoptimized"):
        m = data[policy]
        print(f"{simreport.NAMES[policy]:>30}: return {m['total_return']:+.2%}, Sharpe {m['sharpe']:.2f}, "
              f"max drawdown {m['max_drawdown']:.1%}, failing reviews {m['breaches']}, halts {m['halts']}")
    print(f"experiments {data['experiments']}, promotions {data['promotions']}")
    for p in data["promoted"]:
        print(f"  {p['time'][:16]} {p['variable']} {p['from']} -> {p['to']} (claim {p['claim']}, "
              f"e-value {p['e_value']:.3g} >= {p['threshold']:.3g})")
    print(f"report: {path}")
    return 0


def _parse_now(text: str | None) -> datetime:
    return parse_time(text, "--now") if text else datetime.now(timezone.utc)


def _approve(args: argparse.Namespace) -> int:
    from .consent import apply_refused, approve_apply, revoke_apply

    factory = _ledger()
    if args.revoke:
        revoked = revoke_apply(factory)
        print("revoked: Hermes is read-only from the next review" if revoked else "Hermes was not in apply mode")
        return 0
    problem = apply_refused(factory)  # before the confirmation
    if problem:
        raise InputError(problem)
    print("Apply mode: Hermes will start shadow experiments and promote a change to one variable when its "
          "out-of-sample evidence survives the statistical test; every change is journaled and "
          "`hermes rollback VERSION` restores any earlier version.")
    if args.live:
        print("With --live, promoted versions inherit the live approval: the daemon keeps trading real money "
              "with each promoted version without asking again.")
    if not args.yes:
        if not sys.stdin.isatty():
            raise InputError("not confirmed: run in a terminal to answer, or pass --yes")
        from trader.prompt import answer

        if answer("Type 'apply' to approve") != "apply":
            print("not approved")
            return 1
    approve_apply(factory, live_inherits=bool(args.live), by="hermes approve" + (" --live" if args.live else ""))
    print("approved: the next review applies proven changes")
    return 0


def _history(args: argparse.Namespace) -> int:
    from trader.ledger.models import Experiment, Review, StrategyVersion

    with _ledger()() as s:
        versions = [{"version": v.version, "created_at": v.created_at.isoformat(), "strategy": v.strategy}
                    for v in s.query(StrategyVersion).order_by(StrategyVersion.created_at)]
        experiments = [{"id": e.id, "variable": e.variable, "from": e.baseline_value, "to": e.value,
                        "status": e.status, "baseline": e.baseline_version, "challenger": e.challenger_version,
                        "cycles": e.cycles, "claim": e.metric,
                        "e_value": (e.evidence or {}).get("e_value"), "needed": (1 / e.alpha) if e.alpha else None}
                       for e in s.query(Experiment).order_by(Experiment.id)]
        reviews = [{"id": r.id, "time": r.time.isoformat(), "mode": r.mode, "version": r.strategy_version,
                    "verdict": r.verdict, "decision": r.decision, "report": r.report_path}
                   for r in s.query(Review).order_by(Review.id)]
    if args.json:
        print(json.dumps({"versions": versions, "experiments": experiments, "reviews": reviews}))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for title, rows in (("strategy versions", versions), ("experiments", experiments), ("reviews", reviews)):
        table = Table(title=title)
        if not rows:
            console.print(f"{title}: none yet")
            continue
        for key in rows[0]:
            # version ids whole, whatever the width: `hermes rollback` takes them; long text folds
            ids = key in ("version", "baseline", "challenger")
            table.add_column(key, no_wrap=ids, min_width=max(len(str(r[key] or "")) for r in rows) if ids else None,
                             overflow="fold")
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row.values()))
        console.print(table)
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from trader.ledger import data_dir

    from .consent import rollback

    path = Path(args.config)
    done = rollback(_ledger(), path, args.version, data_dir(), datetime.now(timezone.utc))
    if not done.changed:
        print(f"{path} is already version {done.current}")
    else:
        print(f"{path}: version {done.target} restored (previous kept in {data_dir() / 'versions'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

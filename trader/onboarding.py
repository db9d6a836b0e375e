"""`trader init`: check the environment, then write a commented strategy file and goals file.

Three steps, like freqtrade's `new-config`: a checklist of what the daemon needs (Python, data
directory, database, exchange id, which keys are set: never their values), then the strategy
(validate the user's own file, or scaffold one from the library), then the Well-Defined Goal.
Everything is validated with the same parsers the daemon uses BEFORE anything is written, and
an existing file is kept unless --force. Questions are asked on a terminal; --yes takes the
flags and defaults instead (scripts, Docker builds); trader.answers reads both.

Exit codes: 0 done; 1 files fine but an environment check failed (fix it before `trader run`);
2 bad input or refused (nothing written).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from . import answers as parsers  # `answers` names the collected answers below
from .configdir import default_path
from .errors import InputError
from .scaffold import pct as _pct
from .scaffold import render_goals, render_strategy, validated_goals, validated_strategy, write_all

OK, INFO, FAIL, WARN = "[ok]", "[--]", "[!!]", "warning:"
KEYS = {
    "EXCHANGE_API_KEY": "needed for live trading only",
    "EXCHANGE_API_SECRET": "needed for live trading only",
    "ANTHROPIC_API_KEY": "optional: without it Hermes uses its rule-based proposer",
    "TRADER_WEBHOOK_URL": "optional: notifications of fills, halts and reports",
}
DEFAULT_EXCHANGE = "coinbase"  # reachable from US hosts (Railway), unlike binance.com
USD_EXCHANGES = {"coinbase", "coinbaseexchange", "coinbaseadvanced", "kraken", "bitstamp", "gemini"}
TYPICAL_MIN_ORDER = 10.0  # quote units: Binance asks 5-10 USDT per order, most venues similar
FEW_ORDERS = 10  # capital below this many minimum orders leaves no room to size positions


def add_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register `trader init` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "init", help="check the environment and write a strategy file and goals file",
        description="Check what the daemon needs, then write config/strategy.yaml and config/goals.yaml "
        "(asks on a terminal; --yes takes flags and defaults). Existing files are validated and kept "
        "unless --force.")
    p.add_argument("--config", default=default_path("strategy.yaml"), help="strategy YAML: validated if it exists, else written (default: %(default)s)")
    p.add_argument("--goals", default=default_path("goals.yaml"), help="goals YAML: validated if it exists, else written (default: %(default)s)")
    p.add_argument("--data", metavar="FILE", help="OHLCV file: backtest the strategy on it and compare with the goal")
    p.add_argument("--yes", "-y", action="store_true", help="ask nothing: flags, else defaults")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    s = p.add_argument_group("strategy")
    s.add_argument("--name", help="label for reports (default: from the symbol and strategy)")
    s.add_argument("--exchange", help="ccxt exchange id (default: coinbase)")
    s.add_argument("--symbol", help="market BASE/QUOTE (default: BTC/USD on USD exchanges, else BTC/USDT)")
    s.add_argument("--timeframe", help="candle size (default: 1h)")
    s.add_argument("--strategy", help="from the library, see `trader strategies` (default: ma_cross)")
    s.add_argument("--stake", help="share of equity per position, 0.5 or 50%% (default: 50%%)")
    s.add_argument("--stop-loss", help="exit this far below entry, or none (default: 5%%)")
    s.add_argument("--take-profit", help="exit this far above entry, or none (default: none)")
    g = p.add_argument_group("goal")
    g.add_argument("--capital", help="starting quote balance, written to the strategy file (default: 10000)")
    g.add_argument("--monthly-return", help="target average monthly return (default: 2%%)")
    g.add_argument("--min-sharpe", help="target annualised Sharpe ratio (default: 1.0)")
    g.add_argument("--max-drawdown", help="largest acceptable fall from a peak (default: 10%%)")
    g.add_argument("--failure-drawdown", help="the kill switch halts beyond this (default: max drawdown + 10 points)")
    p.set_defaults(handler=_handler)
    return p


def _handler(args: argparse.Namespace) -> int:
    return run_init(args, os.environ, sys.stdin.isatty())


def run_init(args: argparse.Namespace, environ: Mapping[str, str], stdin_is_tty: bool) -> int:
    interactive = stdin_is_tty and not getattr(args, "yes", False)
    if not stdin_is_tty and not getattr(args, "yes", False):
        print("error: trader init asks questions, but stdin is not a terminal: pass --yes to take the "
              "defaults, with flags such as --exchange, --symbol or --capital to change them", file=sys.stderr)
        return 2
    try:
        healthy = check_environment(args, environ)
        _Init(args, interactive).run()
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("nothing was written", file=sys.stderr)
        return exc.exit_code
    except (KeyboardInterrupt, EOFError):
        print("\naborted: nothing was written", file=sys.stderr)
        return 130
    return 0 if healthy else 1


# -- the environment ------------------------------------------------------------------------


def check_environment(args: argparse.Namespace, environ: Mapping[str, str]) -> bool:
    """Print the checklist; False when something must be fixed before `trader run`."""
    from .ledger.db import data_dir, database_url
    from .logs import Scrubber, secret_env_values

    print("Environment")
    ok = True

    def line(mark: str, text: str) -> None:
        nonlocal ok
        ok = ok and mark != FAIL
        print(f"  {mark:5}{text}")

    version = ".".join(map(str, sys.version_info[:3]))
    line(OK if sys.version_info >= (3, 11) else FAIL, f"Python {version} (3.11 or newer needed)")
    folder = data_dir(environ)
    problem = _unwritable(folder)
    line(FAIL if problem else OK, f"data directory {folder}: " + (problem or "writable"))
    url = database_url(environ)
    shown, problem = _check_database(url, Scrubber(secret_env_values(environ)))
    line(FAIL if problem else OK, f"database {shown}: " + (problem or "reachable, schema up to date"))
    exchange = getattr(args, "exchange", None) or _existing_exchange(Path(args.config))
    if exchange is None and getattr(args, "yes", False):
        exchange = DEFAULT_EXCHANGE
    if exchange is None:
        line(INFO, "exchange: not chosen yet (asked below)")
    else:
        try:
            parsers.exchange(exchange)
            line(OK, f"exchange {exchange}: known to ccxt")
        except ValueError as exc:
            line(FAIL, str(exc))
    for name, why in KEYS.items():
        present = bool((environ.get(name) or "").strip())  # the value itself is never printed
        line(OK if present else INFO, f"{name} {'set' if present else 'not set'}" + ("" if present else f" ({why})"))
    key, secret = (bool((environ.get(n) or "").strip()) for n in ("EXCHANGE_API_KEY", "EXCHANGE_API_SECRET"))
    if key != secret:
        line(FAIL, "live trading needs both EXCHANGE_API_KEY and EXCHANGE_API_SECRET, only one is set")
    print()
    return ok


def _unwritable(folder: Path) -> str | None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".init-check-"):
            pass
    except OSError as exc:
        return f"not writable ({exc.strerror or type(exc).__name__})"
    return None


def _check_database(url: str, scrubber: Any) -> tuple[str, str | None]:
    """The URL as it may be shown (no password) and the problem, if any."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from .ledger.db import open_ledger

    try:
        parsed = make_url(url)
    except Exception:
        return "(DATABASE_URL)", "not a database URL: expected e.g. postgresql://user:pass@host/db"
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        problem = _unwritable(Path(parsed.database).parent)
        if problem:
            return shown, f"its directory is {problem}"
    try:
        engine = open_ledger(url)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        if parsed.password:  # even a short password, which the Scrubber leaves alone
            first = first.replace(str(parsed.password), "***")
        return shown, f"unreachable ({type(exc).__name__}: {scrubber.text(first)})"
    return shown, None


def _existing_exchange(path: Path) -> str | None:
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception:  # missing or broken: the strategy step reports it properly
        return None
    value = raw.get("exchange") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None


# -- the questions ----------------------------------------------------------------------------


class _Init:
    """Collects the answers, renders and validates both files, warns, then writes."""

    def __init__(self, args: argparse.Namespace, interactive: bool) -> None:
        self.args = args
        self.interactive = interactive
        self.force = getattr(args, "force", False)
        self.strategy_path = Path(args.config)
        self.goals_path = Path(args.goals)

    def ask(self, dest: str, prompt: str, default: str, parse: Callable[[str], Any]) -> Any:
        """A flag's value if given (an error if invalid), else the answer, else the default."""
        given = getattr(self.args, dest, None)
        if given is not None:
            try:
                return parse(str(given))
            except ValueError as exc:
                raise InputError(f"--{dest.replace('_', '-')}: {exc}") from None
        if not self.interactive:
            return parse(default)
        from .prompt import ask  # rich is loaded only when a question is asked

        return ask(f"  {prompt}", default, parse)

    def keeps(self, path: Path) -> bool:
        return path.exists() and not self.force

    def run(self) -> None:
        from .config import load_strategy_config
        from .goals import load_goals

        strategy_text = goals_text = None
        if self.keeps(self.strategy_path):
            config = load_strategy_config(self.strategy_path)  # ConfigError: exit 2, its text shown
            print(f"Strategy: {self.strategy_path} exists and is valid")
            self._ignored(("name", "exchange", "symbol", "timeframe", "strategy", "stake", "stop_loss",
                           "take_profit", "capital"), self.strategy_path)
        else:
            if self.interactive:
                print("Strategy: press Enter to take the [default]")
            answers = self.strategy_answers()
        if self.keeps(self.goals_path):
            goals = load_goals(self.goals_path)
            print(f"Goal: {self.goals_path} exists and is valid")
            self._ignored(("monthly_return", "min_sharpe", "max_drawdown", "failure_drawdown"), self.goals_path)
        else:
            if self.interactive:
                print("Goal: what 'working' and 'failing' mean for this bot")
            goals_text = render_goals(self.goal_answers())
            goals = validated_goals(goals_text, self.goals_path)
        if not self.keeps(self.strategy_path):
            # Asked with the goal (it is what the returns are measured on), kept in the strategy file.
            quote = answers["symbol"].split("/")[1].split(":")[0]
            answers["capital"] = self.ask("capital", f"Starting capital in {quote}", "10000", parsers.capital)
            strategy_text = render_strategy(answers)
            config = validated_strategy(strategy_text, self.strategy_path)
        print()
        print(f"Strategy: {summary_of_strategy(config)}")
        print(f"Goal:     {summary_of_goals(goals)}")
        print()
        metrics = self.backtest(config, goals)
        for warning in goal_warnings(config, goals, metrics, getattr(self.args, "data", None)):
            print(f"{WARN} {warning}")
        # Only now, with both files validated, is anything written.
        pending = [(path, text) for path, text in ((self.strategy_path, strategy_text), (self.goals_path, goals_text))
                   if text is not None]
        write_all(pending)
        for path, text in ((self.strategy_path, strategy_text), (self.goals_path, goals_text)):
            print(f"wrote {path}" if text is not None else f"kept {path} (--force replaces it)")
        print("next: `trader backtest --data FILE` to test the strategy, `trader run` to paper trade it")

    def _ignored(self, dests: tuple[str, ...], path: Path) -> None:
        given = [f"--{d.replace('_', '-')}" for d in dests if getattr(self.args, d, None) is not None]
        if given:
            print(f"  {INFO:5}{', '.join(given)} ignored: {path} exists (--force replaces it)")

    def strategy_answers(self) -> dict[str, Any]:
        a: dict[str, Any] = {}
        a["exchange"] = self.ask("exchange", "Exchange (ccxt id)", DEFAULT_EXCHANGE, parsers.exchange)
        quote = "USD" if a["exchange"] in USD_EXCHANGES else "USDT"
        a["symbol"] = self.ask("symbol", "Market", f"BTC/{quote}", parsers.symbol)
        offered = parsers.offered(a["exchange"])
        default_tf = "1h" if not offered or "1h" in offered else offered[0]
        a["timeframe"] = self.ask("timeframe", "Candle timeframe" + (f" ({', '.join(offered)})" if offered else ""),
                                  default_tf, parsers.timeframe(a["exchange"]))
        if self.interactive and getattr(self.args, "strategy", None) is None:
            import strategies

            for name, strategy in sorted(strategies.REGISTRY.items()):
                print(f"    {name}: {strategy.description}")
        a["strategy"] = self.ask("strategy", "Strategy", "ma_cross", parsers.strategy)
        a["stake_fraction"] = self.ask("stake", "Stake: share of equity per position", "50%", parsers.fraction(0, 1, high_ok=True))
        a["stop_loss"] = self.ask("stop_loss", "Stop-loss below the entry price (none: off)", "5%", parsers.fraction(0, 1, optional=True))
        a["take_profit"] = self.ask("take_profit", "Take-profit above the entry price (none: off)", "none",
                                    parsers.fraction(0, 100, high_ok=True, optional=True))
        name = getattr(self.args, "name", None)
        default_name = re.sub(r"[^a-z0-9]+", "-", f"{a['symbol']}-{a['strategy']}".lower()).strip("-")
        a["name"] = (name or default_name).strip()[:80] or default_name
        return a

    def goal_answers(self) -> dict[str, float]:
        g: dict[str, float] = {}
        g["monthly_return"] = self.ask("monthly_return", "Target monthly return", "2%", parsers.fraction(0, 1, low_ok=True))
        g["sharpe"] = self.ask("min_sharpe", "Minimum Sharpe ratio (annualised)", "1.0", parsers.ranged(0, 10, "the Sharpe target"))
        g["max_drawdown"] = self.ask("max_drawdown", "Maximum drawdown (success)", "15%", parsers.fraction(0, 1))
        limit = g["max_drawdown"]

        def failure(text: str) -> float:
            value = parsers.fraction(0, 1)(text)
            assert value is not None
            if value < limit:
                raise ValueError(f"the failure drawdown ({_pct(value)}) must be at least the success maximum ({_pct(limit)})")
            return value

        default = _pct(min(round(limit + 0.10, 6), max(limit, 0.99)))
        g["failure_drawdown"] = self.ask("failure_drawdown", "Failure drawdown: the kill switch halts beyond it", default, failure)
        return g

    def backtest(self, config: Any, goals: Any) -> Any:
        """The strategy's metrics on --data, shown next to the targets; None without --data."""
        path = getattr(self.args, "data", None)
        if not path:
            return None
        from .backtest import run_backtest
        from .ohlcv import load_ohlcv

        frame = load_ohlcv(path, config.timeframe)  # DataError: exit 2, nothing written
        try:
            metrics = run_backtest(frame, config).metrics
        except ValueError as exc:
            raise InputError(f"{path}: cannot backtest on it ({exc})") from None
        target = goals.success
        show = lambda metric, fmt: (fmt(target[metric]) if metric in target else "-")  # noqa: E731
        print(f"Backtest of {config.strategy} on {path}: {len(frame):,} bars, "
              f"{frame.index[0]:%Y-%m-%d} to {frame.index[-1]:%Y-%m-%d}")
        print(f"  {'':16}{'your target':>14}{'backtest':>12}")
        print(f"  {'monthly return':16}{show('monthly_return', lambda v: '>= ' + _pct(v)):>14}{metrics.monthly_return:>12.2%}")
        print(f"  {'Sharpe':16}{show('sharpe', lambda v: f'>= {v:g}'):>14}{metrics.sharpe:>12.2f}")
        print(f"  {'max drawdown':16}{show('max_drawdown', lambda v: '<= ' + _pct(v)):>14}{metrics.max_drawdown:>12.2%}")
        print(f"  {'closed trades':16}{'':>14}{metrics.trades:>12}")
        print()
        return metrics


def summary_of_strategy(config: Any) -> str:
    risk = config.risk
    off = lambda v: "off" if v is None else _pct(v)  # noqa: E731
    quote = config.symbol.split("/")[1].split(":")[0]
    return (f"{config.strategy} on {config.exchange} {config.symbol} {config.timeframe}, capital "
            f"{config.capital:g} {quote}, stake {_pct(risk.stake_fraction)}, stop-loss {off(risk.stop_loss)}, "
            f"take-profit {off(risk.take_profit)} (version {config.version})")


def summary_of_goals(goals: Any) -> str:
    from .goals import POLARITY

    words = {"monthly_return": "monthly return", "max_drawdown": "max drawdown", "sharpe": "Sharpe"}
    parts = []
    for metric, value in goals.success.items():
        ratio = metric in ("sharpe", "sortino", "profit_factor")
        sign = ">=" if POLARITY[metric] > 0 else "<="
        parts.append(f"{words.get(metric, metric)} {sign} {value:g}" if ratio else f"{words.get(metric, metric)} {sign} {_pct(value)}")
    limit = goals.max_drawdown_limit
    halt = f"; the kill switch halts beyond a {_pct(limit)} drawdown" if limit is not None else ""
    return (", ".join(parts) or "no success thresholds") + halt


# -- is the goal realistic? -------------------------------------------------------------------------


def goal_warnings(config: Any, goals: Any, metrics: Any = None, data: str | None = None) -> list[str]:
    """One sentence per reason the goal looks out of reach for this capital and market."""
    out: list[str] = []
    success = goals.success
    monthly, sharpe, max_dd = success.get("monthly_return"), success.get("sharpe"), success.get("max_drawdown")
    failure_dd = goals.max_drawdown_limit
    quote = config.symbol.split("/")[1].split(":")[0]
    if monthly is not None and monthly > 0.10:
        out.append(f"a {_pct(monthly)} monthly target compounds to {(1 + monthly) ** 12 - 1:.0%} a year; few strategies "
                   "sustain that, and chasing it usually means taking risks that end at the failure drawdown.")
    if sharpe is not None and sharpe > 3:
        out.append(f"a Sharpe ratio of {sharpe:g} held over months is rare even for professional funds, "
                   "so the success verdict may stay out of reach.")
    if max_dd is not None and max_dd < 0.05:
        out.append(f"crypto prices often move 5% in a day, so a strategy that holds positions will rarely "
                   f"keep its drawdown under {_pct(max_dd)}.")
    capital, stake, fee = config.capital, config.risk.stake_fraction, config.risk.fee
    if capital < TYPICAL_MIN_ORDER * FEW_ORDERS:
        out.append(f"with {capital:g} {quote} and a typical {TYPICAL_MIN_ORDER:g} {quote} minimum order, fees of "
                   f"{_pct(fee)} per fill plus order-size rounding weigh heavily on every trade, and there is little room to size positions.")
    if capital * stake < TYPICAL_MIN_ORDER:
        out.append(f"a position of {capital * stake:g} {quote} ({_pct(stake)} of {capital:g}) is below the typical "
                   f"{TYPICAL_MIN_ORDER:g} {quote} minimum order, so the exchange would refuse it.")
    if metrics is not None:
        if failure_dd is not None and metrics.max_drawdown > failure_dd:
            out.append(f"in the backtest on {data} the strategy fell {metrics.max_drawdown:.1%} from a peak, beyond "
                       f"the failure drawdown of {_pct(failure_dd)}: the kill switch would have halted it.")
        elif max_dd is not None and metrics.max_drawdown > max_dd:
            out.append(f"in the backtest on {data} the strategy fell {metrics.max_drawdown:.1%} from a peak, more "
                       f"than your {_pct(max_dd)} maximum drawdown, so as configured it would miss this goal.")
        if monthly is not None and metrics.monthly_return < monthly:
            out.append(f"the backtest made {metrics.monthly_return:.2%} a month, below your {_pct(monthly)} target.")
    return out

"""The files `trader init` writes: a commented strategy file and goals file, rendered from
the answers and validated with the daemon's own parsers before anything touches the disk."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Mapping

from .errors import InputError


def pct(value: float) -> str:
    return f"{value * 100:.4g}%"


def _scalar(value: Any) -> str:
    """A YAML scalar that reads back as `value`."""
    import yaml

    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        value = float(f"{value:.10g}")
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        text = repr(value)
        return f"{value:.12f}".rstrip("0") if "e" in text else text  # PyYAML reads 1e-05 as a string
    if isinstance(value, int):
        return str(value)
    text = str(value)
    plain = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_./-]*", text) and yaml.safe_load(text) == text
    return text if plain else json.dumps(text)


def _around(value: float, step: float, cap: float) -> tuple[float, float, float]:
    """Bounds for a risk setting: roughly 0.4x to 2x the chosen value, on the step grid."""
    low = max(step, math.floor(round(value * 0.4 / step, 6)) * step)
    high = min(cap, math.ceil(round(value * 2 / step, 6)) * step)
    return round(min(low, value), 6), round(max(high, value), 6), step


def tunable_bounds(strategy: Any, params: Any, risk: Mapping[str, Any]) -> dict[str, tuple[float, float, float]]:
    """The strategy's declared tunable bounds, widened so the chosen values lie inside, plus
    the stop-loss and take-profit when they are on."""
    out: dict[str, tuple[float, float, float]] = {}
    values = params.model_dump()
    for key, (low, high, step) in strategy.tunable.items():
        value = values.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = (min(low, value), max(high, value), step)
    if risk.get("stop_loss"):
        out["stop_loss"] = _around(risk["stop_loss"], 0.01, 0.5)
    if risk.get("take_profit"):
        out["take_profit"] = _around(risk["take_profit"], 0.01, 100.0)
    return out


def _rows(pairs: list[tuple[str, str, str]], indent: str) -> list[str]:
    """`key: value   # comment` lines with the comments aligned."""
    width = max((len(f"{k}: {v}") for k, v, _ in pairs), default=0) + 2
    return [f"{indent}{(k + ': ' + v).ljust(width)}# {c}" if c else f"{indent}{k}: {v}" for k, v, c in pairs]


def render_strategy(a: Mapping[str, Any]) -> str:
    import strategies

    strategy = strategies.get(a["strategy"])
    params = strategy.params()
    quote = a["symbol"].split("/")[1].split(":")[0]
    fields = type(params).model_fields
    param_rows = [(k, _scalar(v), fields[k].description or "") for k, v in params.model_dump().items()]
    risk = {"stake_fraction": a["stake_fraction"], "stop_loss": a["stop_loss"], "take_profit": a["take_profit"]}
    tunable = tunable_bounds(strategy, params, risk)
    names = ", ".join(sorted(strategies.REGISTRY))
    lines = [
        "# The strategy the daemon trades, written by `trader init`. Edit by hand: the daemon validates",
        "# every change and refuses a bad file with a message naming the line and the field. Every",
        "# distinct content of this file is a \"strategy version\" (a hash), and every order, fill and",
        "# equity point carries it.",
        "",
        "# A label for reports and logs.",
        f"name: {_scalar(a['name'])}",
        "",
        "# Where and what: a ccxt exchange id, a market symbol (BASE/QUOTE) and a candle timeframe",
        "# that the exchange offers (1m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 1d, ...).",
        f"exchange: {_scalar(a['exchange'])}",
        f"symbol: {_scalar(a['symbol'])}",
        f"timeframe: {_scalar(a['timeframe'])}",
        "",
        f"# Starting quote balance for backtests and paper trading ({quote} here).",
        f"capital: {_scalar(float(a['capital']))}",
        "",
        f"# Which strategy from the library: {names}.",
        f"# {strategy.name}: {strategy.description}",
        f"strategy: {strategy.name}",
        "",
        "# The strategy's parameters, the library's defaults (`trader strategies` lists them all).",
        "params:",
        *_rows(param_rows, "  "),
        "",
        "risk:",
        *_rows([
            ("stake_fraction", _scalar(a["stake_fraction"]), "share of equity committed to a position (0 < x <= 1)"),
            ("stop_loss", _scalar(a["stop_loss"]), "exit this fraction below the entry price; null turns it off"),
            ("take_profit", _scalar(a["take_profit"]), "exit this fraction above the entry price; null turns it off"),
            ("fee", "0.001", "per fill, fraction of notional (0.1%)"),
            ("slippage", "0.0005", "adverse price move on market fills, fraction of price"),
        ], "  "),
        "",
        "# The variables Hermes may change, one per experiment, and never outside these bounds.",
        "# Names are parameters above or the risk settings stake_fraction, stop_loss, take_profit.",
    ]
    if tunable:
        width = max(map(len, tunable)) + 2
        lines.append("tunable:")
        lines += [f"  {(k + ':').ljust(width)}{{min: {_scalar(float(lo))}, max: {_scalar(float(hi))}, step: {_scalar(float(st))}}}"
                  for k, (lo, hi, st) in tunable.items()]
    else:
        lines.append("tunable: {}")
    return "\n".join(lines) + "\n"


def render_goals(g: Mapping[str, float]) -> str:
    m, s, dd, fail = g["monthly_return"], g["sharpe"], g["max_drawdown"], g["failure_drawdown"]
    return "\n".join([
        "# Your Well-Defined Goal, written by `trader init`: what \"working\" and \"failing\" mean for this",
        "# bot. Hermes scores every review against it, and the daemon's kill switch uses the failure",
        "# drawdown. Fractions, not percent: 0.03 is 3%.",
        "",
        "# Success: every threshold met means the strategy does what you want.",
        "success:",
        *_rows([("monthly_return", _scalar(m), f"average monthly return, at least {pct(m)}"),
                ("sharpe", _scalar(s), f"annualised Sharpe ratio, at least {s:g}"),
                ("max_drawdown", _scalar(dd), f"largest fall from a peak, at most {pct(dd)}")], "  "),
        "",
        "# Failure: any of these breached means stop and rethink.",
        "failure:",
        "  thresholds:",
        *_rows([("max_drawdown", _scalar(fail), f"above {pct(fail)} the daemon halts (kill switch) and Hermes proposes a fix")],
               "    "),
        "  monthly_return_floor:  # this many months in a row below the floor",
        "    value: -0.03",
        "    months: 3",
        "",
        "# No verdict (met or failing) before this many closed trades.",
        "min_trades: 10",
        "",
        "# What the kill switch does with an open position: close it, or keep it and only stop new entries.",
        "on_halt: close",
        "",
        "review:",
        '  cron: "0 6 * * mon"    # when Hermes reviews (UTC): Mondays 06:00',
        "  lookback_days: 90      # history that is scored and backtested",
    ]) + "\n"


def validated_strategy(text: str, path: Path) -> Any:
    from .config import parse_strategy_config
    from .yamlfile import parse_yaml

    raw, lines = parse_yaml(text, str(path), "the strategy settings")
    return parse_strategy_config(raw, source=str(path), lines=lines)


def validated_goals(text: str, path: Path) -> Any:
    from .goals import parse_goals
    from .yamlfile import parse_yaml

    raw, lines = parse_yaml(text, str(path), "the goals")
    return parse_goals(raw, str(path), lines)


def write_all(files: list[tuple[Path, str]]) -> None:
    """Write every file or none: all go to temporary files first, then each is renamed over
    its target (a rename within a directory does not fail halfway)."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, text in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            staged.append((tmp, path))
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from a daemon running as another user
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
    except OSError as exc:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    for tmp, path in staged:
        os.replace(tmp, path)

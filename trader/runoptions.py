"""What a run is told (`RunOptions`), and the rules a replay and the 24/7 service share:
how many bars a tick feeds the strategy, and an optional goals file."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .config import StrategyConfig
from .goals import Goals, load_goals
from .ledger.models import MAIN_BOOK

log = logging.getLogger("trader.daemon")


@dataclass(frozen=True)
class RunOptions:
    config_path: Path
    goals_path: Path | None = None
    live: bool = False
    replay: Path | None = None
    speed: float | None = None  # replay pace in bars per second; None: as fast as possible
    database_url: str | None = None
    port: int | None = None  # health server; None: none
    settle_seconds: float = 5.0
    book: str = MAIN_BOOK


def lookback_for(config: StrategyConfig) -> int:
    """Bars a tick feeds the strategy: ten warm-ups (at least 500), so that recursive
    indicators (EMA, RSI) have forgotten their seed and agree with a full-history backtest."""
    return max(10 * config.strategy_def().warmup(config.params), 500)


def load_goals_if_any(path: Path | None) -> Goals | None:
    if path is None:
        return None
    if not Path(path).exists():
        log.warning("no goals file at %s: the drawdown kill switch is off", path)
        return None
    return load_goals(path)

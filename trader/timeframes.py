"""Candle timeframes as ccxt spells them ("1m", "4h", "1d") and their length in seconds."""

from __future__ import annotations

import re

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"^([1-9][0-9]*)([smhdw])$")

# Bars per year use a 365-day year because crypto markets trade every day.
SECONDS_PER_YEAR = 365 * 86400


def timeframe_seconds(timeframe: str) -> int:
    """Length of one candle in seconds; ValueError for anything ccxt would not accept."""
    match = _PATTERN.match(timeframe or "")
    if not match:
        raise ValueError(
            f"unknown timeframe {timeframe!r}: expected a number and a unit s, m, h, d or w, like '1h'"
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def bars_per_year(timeframe: str) -> float:
    return SECONDS_PER_YEAR / timeframe_seconds(timeframe)

"""The strategy library: pure signal functions and their parameter models, by name."""

from __future__ import annotations

from .base import Params, Strategy
from . import donchian, ma_cross, rsi_reversion

REGISTRY: dict[str, Strategy] = {
    s.name: s for s in (ma_cross.STRATEGY, rsi_reversion.STRATEGY, donchian.STRATEGY)
}


def get(name: str) -> Strategy:
    """The strategy registered under `name`; KeyError names the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise KeyError(f"unknown strategy {name!r}; known strategies: {known}") from None


__all__ = ["Params", "Strategy", "REGISTRY", "get"]

"""The local exchange's controllable clock.

Two times matter to an exchange and they are kept apart here on purpose:

* market time (`now_ms`): which candles are revealed, what the current price is, the time
  stamped on orders and trades, and what /api/v3/time answers. `trader demo`, the command
  line's --advance-every and --realtime, and tests move it.
* wall time (`wall_ms`): what signed requests' `timestamp` is checked against. ccxt signs
  with the machine's real clock, so this follows the real clock, shifted by `skew_ms` (the
  command line's --skew; clock-skew faults shift it further for single requests).
"""

from __future__ import annotations

import numbers
import threading
import time
from datetime import datetime, timedelta, timezone

import pandas as pd


def to_ms(when: int | float | datetime | pd.Timestamp | str) -> int:
    """Epoch milliseconds from a number (already ms), a datetime (naive = UTC) or an ISO string."""
    if isinstance(when, bool):
        raise TypeError("a time, not a bool")
    if isinstance(when, numbers.Real):  # numpy integers too, which pandas would read as ns
        return int(when)
    stamp = pd.Timestamp(when)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.tz_convert("UTC").value // 1_000_000)


class Clock:
    """Market time that only moves when told to, plus a skewable wall time."""

    def __init__(self, start_ms: int) -> None:
        self._lock = threading.Lock()
        self._now = int(start_ms)
        self._skew_ms = 0

    def set(self, when: int | float | datetime | pd.Timestamp | str) -> None:
        """Jump to a time: epoch ms, or a datetime (naive = UTC). Moving backwards is allowed."""
        with self._lock:
            self._now = to_ms(when)

    def advance(self, delta: int | timedelta) -> int:
        """Move forward by ms (or a timedelta); returns the new time."""
        ms = int(delta.total_seconds() * 1000) if isinstance(delta, timedelta) else int(delta)
        with self._lock:
            self._now += ms
            return self._now

    def now_ms(self) -> int:
        with self._lock:
            return self._now

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ms() / 1000, tz=timezone.utc)

    @property
    def skew_ms(self) -> int:
        """How far the exchange's wall clock is ahead (+) or behind (-) the real one."""
        with self._lock:
            return self._skew_ms

    @skew_ms.setter
    def skew_ms(self, value: int) -> None:
        with self._lock:
            self._skew_ms = int(value)

    def wall_ms(self, extra_skew_ms: int = 0) -> int:
        """The exchange's wall time, which signed request timestamps must be close to."""
        return int(time.time() * 1000) + self.skew_ms + extra_skew_ms

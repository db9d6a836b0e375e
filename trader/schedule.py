"""When the daemon ticks: once at start (to catch up on the last close), then at every candle
close plus the settle delay, on the grid the exchange's candles use (multiples of the candle
length since the epoch; weeks start on Monday, as Binance's and ccxt's weekly candles do).

APScheduler 3's own IntervalTrigger counts from the previous run, so a catch-up run at
19:51:25 would put every later tick at hh:51:25: up to a whole candle late. This trigger
returns to the grid after any run, whenever it happened.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from apscheduler.triggers.interval import IntervalTrigger

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MONDAY = timedelta(days=4)  # 1970-01-01 was a Thursday
_AFTER = timedelta(microseconds=1)


class CandleCloseTrigger(IntervalTrigger):
    """Fires at every candle close + `settle_seconds`, and never between."""

    def __init__(self, timeframe_seconds: int, settle_seconds: float):
        self.timeframe_seconds, self.settle_seconds = timeframe_seconds, settle_seconds
        weekly = timeframe_seconds % (7 * 86400) == 0
        anchor = EPOCH + (_MONDAY if weekly else timedelta(0)) + timedelta(seconds=settle_seconds)
        super().__init__(seconds=timeframe_seconds, start_date=anchor, timezone=timezone.utc)

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        if previous_fire_time is None:
            return super().get_next_fire_time(None, now)
        # the first grid point after the previous run, not `previous + interval`
        return super().get_next_fire_time(None, previous_fire_time + _AFTER)

    def __str__(self) -> str:
        return f"every {self.timeframe_seconds} s candle close + {self.settle_seconds:g} s"


def tick_until_current(tick: Callable[[], None], trigger: CandleCloseTrigger,
                       clock: Callable[[], datetime], stopped: Callable[[], bool]) -> int:
    """Run `tick`, and again at once while a candle closed (plus settle) during the last one.

    The tick job never overlaps itself (max_instances=1), so APScheduler skips a run that
    falls due while a slow tick (a slow exchange, long retries) is still going; without this,
    the candle that closed meanwhile would be decided a whole candle late, or never.
    Returns the number of ticks run."""
    ticks = 0
    while True:
        started = clock()
        tick()
        ticks += 1
        due = trigger.get_next_fire_time(None, started + _AFTER)
        if stopped() or due is None or due > clock():
            return ticks

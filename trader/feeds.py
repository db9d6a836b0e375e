"""Market data for the engine: what one tick sees.

Two sources, one shape: `ReplayFeed` walks a file on a simulated clock; `ExchangeFeed` asks
the exchange (ccxt's public API) for the latest candles. Either way a tick sees the closed
bars up to the one that just closed, and the opening price of the bar in progress, which is
where a market order sent now is modeled to fill.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator

import pandas as pd

from .domain import MarketView
from .timeframes import timeframe_seconds


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class ReplayFeed:
    """History from a frame, one bar per tick, as fast as the engine can take it."""

    def __init__(self, frame: pd.DataFrame, lookback: int):
        if len(frame) == 0:
            raise ValueError("nothing to replay: the frame has no bars")
        self.frame = frame
        self.lookback = max(int(lookback), 1)

    def __len__(self) -> int:
        return len(self.frame)

    def views(self, start: int = 0) -> Iterator[MarketView]:
        frame, index = self.frame, self.frame.index
        # the columns as they are (views, not copies), to Python floats one bar at a time:
        # the whole table as lists would take about 200 bytes a bar (100 MB for a year of minutes)
        o, h, l, c = (frame[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close"))
        n = len(frame)
        # the bar times as UTC datetimes from the index's integers: a pandas Timestamp per bar
        # (and its conversion for the ledger) costs more than a tenth of a replay tick
        ns = index.as_unit("ns").asi8 if isinstance(index, pd.DatetimeIndex) else None
        for i in range(start, n):
            nxt = i + 1 < n
            if ns is None:
                bar_utc, next_time = None, index[i + 1] if nxt else None
            else:
                bar_utc = _EPOCH + timedelta(microseconds=int(ns[i]) // 1000)
                next_time = _EPOCH + timedelta(microseconds=int(ns[i + 1]) // 1000) if nxt else None
            yield MarketView(
                bars=frame.iloc[max(0, i - self.lookback + 1): i + 1],
                next_open=float(o[i + 1]) if nxt else None,
                next_time=next_time,
                ohlc=(float(o[i]), float(h[i]), float(l[i]), float(c[i])),
                bar_utc=bar_utc,
            )


class ExchangeFeed:
    """The latest candles from the exchange (public endpoints; no keys needed)."""

    def __init__(self, adapter, timeframe: str, lookback: int):
        self.adapter = adapter
        self.timeframe = timeframe
        self.bar = timedelta(seconds=timeframe_seconds(timeframe))
        self.lookback = max(int(lookback), 1)

    def view(self, now: datetime | None = None) -> MarketView:
        now = now or datetime.now(timezone.utc)
        frame = self.adapter.fetch_candles(self.timeframe, self.lookback + 2)
        # a candle is closed once its open time + one bar has passed
        closed = frame[frame.index + self.bar <= pd.Timestamp(now)]
        in_progress = frame[frame.index + self.bar > pd.Timestamp(now)]
        if len(in_progress):
            next_open, next_time = float(in_progress["open"].iloc[0]), in_progress.index[0]
        else:
            # the exchange has not listed the new candle yet: the last price is its open
            next_open = float(self.adapter.fetch_price())
            next_time = closed.index[-1] + self.bar if len(closed) else None
        return MarketView(bars=closed.iloc[-self.lookback:], next_open=next_open, next_time=next_time)

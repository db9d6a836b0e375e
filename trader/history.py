"""The candles a review's walk-forward tests need, up to the review time: from a file the
user names, or downloaded from the strategy's exchange into the local cache."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from .config import StrategyConfig
from .errors import InputError
from .ledger import data_dir
from .ohlcv import load_ohlcv
from .timeframes import timeframe_seconds


def load_history(config: StrategyConfig, lookback_days: int, now: datetime, path: str | None,
                 warmup_bars: int) -> pd.DataFrame:
    """Candles up to `now`: the file at `path` (which must reach `now`), or `lookback_days`
    from the exchange plus the strategy's warm-up (`warmup_bars`, the caller's estimate at
    any value of the tunables) before them, with room to spare."""
    bar = timedelta(seconds=timeframe_seconds(config.timeframe))
    if path:
        frame = load_ohlcv(path, timeframe=config.timeframe)
        if len(frame) == 0 or frame.index[-1] + 2 * bar < now or frame.index[0] > now:
            span = f"{frame.index[0]:%Y-%m-%d %H:%M} to {frame.index[-1] + bar:%Y-%m-%d %H:%M} UTC" if len(frame) \
                else "no candles"
            raise InputError(f"{path}: the candles cover {span}, which does not reach the review time "
                             f"{now:%Y-%m-%d %H:%M} UTC; `--now TIME` reviews as of an earlier time inside the file")
        return frame[frame.index <= now]
    from .download import download_ohlcv  # ccxt: only when the candles come from the exchange

    warmup = 2 * warmup_bars * bar
    since = now - timedelta(days=lookback_days) - max(warmup, timedelta(days=30))
    _, frame = download_ohlcv(config.exchange, config.symbol, config.timeframe, since, now,
                              cache_dir=data_dir() / "ohlcv")
    return frame

"""Download closed OHLCV candles from any ccxt exchange into a local CSV cache.

The cache is one CSV per exchange, symbol and timeframe, in the same format load_ohlcv
reads (ISO 8601 UTC timestamps). A re-run only asks the exchange for what the cache lacks:
candles before its first one (when `since` moved earlier) and candles after its last one.
Only closed candles are ever written, so a cached candle never changes afterwards.
"""

from __future__ import annotations

import difflib
import os
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import ccxt
import numpy as np
import pandas as pd

from trader import retry
from trader.errors import DataError
from trader.exchange import HttpStatus
from trader.ohlcv import COLUMNS, load_ohlcv
from trader.timeframes import timeframe_seconds

# ccxt's temporary failures, all worth a retry. OperationFailed is ccxt's common base for
# them (NetworkError and its children, plus bad/empty responses and generic "try again").
TEMPORARY_ERRORS: tuple[type[Exception], ...] = (
    ccxt.NetworkError,
    ccxt.RequestTimeout,
    ccxt.RateLimitExceeded,
    ccxt.ExchangeNotAvailable,
    ccxt.DDoSProtection,
    ccxt.OperationFailed,
)
_MAX_DELAY = 60.0  # seconds; one backoff step never waits longer
_CREDENTIALS = ("apiKey", "secret", "password", "uid", "privateKey", "walletAddress", "token")

Progress = Callable[[int, pd.Timestamp], None]
T = TypeVar("T")


def cache_path(cache_dir: str | Path, exchange_id: str, symbol: str, timeframe: str) -> Path:
    """Where the candles of one market and timeframe are cached."""
    safe = symbol.replace("/", "-").replace(":", "-")
    return Path(cache_dir) / exchange_id / f"{safe}_{timeframe}.csv"


def download_ohlcv(
    exchange_id: str,
    symbol: str,
    timeframe: str,
    since: datetime,
    until: datetime | None = None,
    *,
    cache_dir: str | Path,
    exchange: Any = None,
    progress: Progress | None = None,
    limit: int | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    now: datetime | None = None,
) -> tuple[Path, pd.DataFrame]:
    """Download closed candles with open time in [since, until) and cache them.

    Returns the cache file and the canonical frame (as load_ohlcv returns it) for the
    requested range. Naive datetimes are taken as UTC; `until` defaults to now. `limit` is
    the page size (None: the exchange's default); `retries` and `backoff` (seconds, doubled
    per attempt) apply to ccxt's temporary errors; `now` is the clock, for tests.
    """
    try:
        step_ms = timeframe_seconds(timeframe) * 1000
    except ValueError as exc:
        raise DataError(str(exc)) from None
    since_ms = _to_ms(since)
    now_ms = _to_ms(now) if now is not None else int(time.time() * 1000)
    until_ms = _to_ms(until) if until is not None else now_ms
    if until_ms <= since_ms:
        raise DataError(f"download: until {_iso(until_ms)} is not after since {_iso(since_ms)}")

    if exchange is None:
        exchange = _build_exchange(exchange_id)
    fetcher = _Fetcher(exchange, exchange_id, symbol, timeframe, step_ms, limit, retries, backoff, progress)
    fetcher.check_market()

    path = cache_path(cache_dir, exchange_id, symbol, timeframe)
    cached = _load_cache(path)
    # Never past the last closed candle: its open time + timeframe must be <= now.
    stop_ms = min(until_ms, now_ms - step_ms + 1)

    head = np.empty((0, 6))
    tail: list[np.ndarray] = []
    try:
        if cached is not None:
            first_ms, last_ms = _ms(cached.index[0]), _ms(cached.index[-1])
            if since_ms < first_ms:
                head = fetcher.fetch_range(since_ms, min(stop_ms, first_ms), now_ms)
            tail_start = max(since_ms, last_ms + step_ms)
        else:
            tail_start = since_ms
        fetcher.fetch_range(tail_start, stop_ms, now_ms, into=tail)
    except BaseException:
        # Keep what was fetched after the cache's end: a re-run resumes from there. A partial
        # head is dropped, since it would leave a hole that resuming never fills.
        if tail:
            try:
                _save(path, cached, [head, *tail], exchange_id, symbol, timeframe)
            except Exception:
                pass  # the original error matters more
        raise

    fetched = [head, *tail]
    if any(len(rows) for rows in fetched):
        cached = _save(path, cached, fetched, exchange_id, symbol, timeframe)

    start = pd.Timestamp(since_ms, unit="ms", tz="UTC")
    end = pd.Timestamp(until_ms, unit="ms", tz="UTC")
    result = cached.loc[(cached.index >= start) & (cached.index < end)] if cached is not None else None
    if result is None or result.empty:
        raise DataError(
            f"{exchange_id}: no closed {timeframe} candles for {symbol} between {_iso(since_ms)} and "
            f"{_iso(min(until_ms, now_ms))}; expected the market to have traded then"
        )
    return path, result


class _Fetcher:
    """Paginates fetch_ohlcv with retries, translating ccxt errors into DataError."""

    def __init__(self, exchange: Any, exchange_id: str, symbol: str, timeframe: str, step_ms: int,
                 limit: int | None, retries: int, backoff: float, progress: Progress | None) -> None:
        self.exchange = exchange
        self.exchange_id = exchange_id
        self.symbol = symbol
        self.timeframe = timeframe
        self.step_ms = step_ms
        self.limit = limit
        self.retries = retries
        self.backoff = backoff
        self.progress = progress
        self.fetched = 0
        self.status = HttpStatus(exchange)

    def check_market(self) -> None:
        ex, name = self.exchange, self.exchange_id
        if not ex.has.get("fetchOHLCV"):
            raise DataError(f"{name}: this exchange does not offer candles (fetchOHLCV) through ccxt")
        timeframes = ex.timeframes or {}
        if self.timeframe not in timeframes:
            offered = ", ".join(timeframes) or "none"
            raise DataError(f"{name}: timeframe {self.timeframe!r} is not supported; expected one of {offered}")
        self._call("loading markets", ex.load_markets)
        if self.symbol not in (ex.markets or {}):
            close = difflib.get_close_matches(self.symbol, list(ex.markets or {}), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; expected a unified symbol like BTC/USDT"
            raise DataError(f"{name}: unknown symbol {self.symbol!r}{hint}")

    def fetch_range(self, start_ms: int, stop_ms: int, now_ms: int, into: list[np.ndarray] | None = None) -> np.ndarray:
        """Closed candles with open time in [start_ms, stop_ms), appended page by page to `into`."""
        pages: list[np.ndarray] = [] if into is None else into
        cursor = start_ms
        while cursor < stop_ms:
            what = f"fetching {self.symbol} {self.timeframe} candles from {_iso(cursor)}"
            raw = self._call(what, lambda: self.exchange.fetch_ohlcv(self.symbol, self.timeframe, cursor, self.limit))
            if not raw:
                break
            page = _to_array(raw, self.exchange_id, what)
            page = page[np.argsort(page[:, 0], kind="stable")]  # some exchanges answer newest first
            last = int(page[-1, 0])
            keep = (page[:, 0] >= cursor) & (page[:, 0] < stop_ms) & (page[:, 0] + self.step_ms <= now_ms)
            if keep.any():
                pages.append(page[keep])
                self.fetched += int(keep.sum())
                if self.progress is not None:
                    self.progress(self.fetched, pd.Timestamp(int(page[keep][-1, 0]), unit="ms", tz="UTC"))
            if last + self.step_ms <= cursor:
                break  # the same (or an older) page again: the exchange ignores `since`
            cursor = last + self.step_ms
        return np.concatenate(pages) if pages else np.empty((0, 6))

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        def attempt() -> T:
            self.status.last = None
            try:
                return fn()
            except ccxt.BadSymbol as exc:
                raise DataError(f"{self.exchange_id}: unknown symbol {self.symbol!r} ({self._clean(exc)})") from None
            except ccxt.BaseError as exc:
                # a 5xx with an error code ccxt does not know (Binance's -1008 "overloaded") is
                # a plain ExchangeError: the status says it is the exchange's trouble, and passes
                if not (isinstance(exc, TEMPORARY_ERRORS) or self.status.server_error()):
                    raise DataError(f"{self.exchange_id}: {what} failed: {type(exc).__name__}: {self._clean(exc)}") from None
                raise  # retried

        try:
            return retry.call(attempt, attempts=self.retries + 1, first=self.backoff, cap=_MAX_DELAY,
                              retry_on=ccxt.BaseError)
        except ccxt.BaseError as exc:
            raise DataError(
                f"{self.exchange_id}: {what} still failing after {self.retries + 1} attempts: "
                f"{type(exc).__name__}: {self._clean(exc)}"
            ) from None

    def _clean(self, exc: Exception) -> str:
        """The error text without credentials, on one line, short enough to read."""
        text = " ".join(str(exc).split())
        for attr in _CREDENTIALS:
            value = getattr(self.exchange, attr, None)
            if isinstance(value, str) and len(value) >= 4:
                text = text.replace(value, "***")
        return text[:400] + ("..." if len(text) > 400 else "")


def _build_exchange(exchange_id: str) -> Any:
    if exchange_id not in ccxt.exchanges:
        close = difflib.get_close_matches(exchange_id, ccxt.exchanges, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; expected a ccxt exchange id like binance or kraken"
        raise DataError(f"unknown exchange {exchange_id!r}{hint}")
    url = (os.environ.get("TRADER_EXCHANGE_URL") or "").strip()
    if url:  # the daemon's exchange is elsewhere (the local exchange): its candles too
        from trader.exchange import ExchangeAdapter

        return ExchangeAdapter.from_env(exchange_id, "", environ={"TRADER_EXCHANGE_URL": url}).client
    # Public data only: no API keys, so none can leak into messages or logs.
    return getattr(ccxt, exchange_id)({"enableRateLimit": True})


def _load_cache(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        return load_ohlcv(path)
    except DataError as exc:
        raise DataError(f"{exc}\nthe download cache is damaged; delete {path} to download it again") from None


def _to_array(raw: list, exchange_id: str, what: str) -> np.ndarray:
    try:
        rows = np.array([row[:6] for row in raw], dtype=np.float64)
    except (TypeError, ValueError, IndexError):
        raise DataError(f"{exchange_id}: {what}: unexpected candle format {str(raw[:1])[:200]}") from None
    if rows.ndim != 2 or rows.shape[1] != 6:
        raise DataError(f"{exchange_id}: {what}: expected [time, open, high, low, close, volume] rows")
    # Some exchanges leave volume empty on quiet candles; that is no volume, not bad data.
    rows[np.isnan(rows[:, 5]), 5] = 0.0
    return rows


def _save(path: Path, cached: pd.DataFrame | None, fetched: list[np.ndarray],
          exchange_id: str, symbol: str, timeframe: str) -> pd.DataFrame:
    """Merge, dedupe, sort, validate and atomically replace the cache file."""
    rows = np.concatenate([r for r in fetched if len(r)]) if any(len(r) for r in fetched) else np.empty((0, 6))
    index = pd.DatetimeIndex(pd.to_datetime(rows[:, 0].astype(np.int64), unit="ms", utc=True), name="timestamp")
    new = pd.DataFrame(rows[:, 1:], columns=list(COLUMNS), index=index.as_unit("ns"))
    parts = [p for p in (cached, new) if p is not None and len(p)]
    merged = pd.concat(parts) if parts else new
    # Fresh rows win over cached ones for the same time (both are closed, so normally equal).
    merged = merged[~merged.index.duplicated(keep="last")].sort_index()

    out = merged.copy()
    out.index = out.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.index.name = "timestamp"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp.csv")
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            out.to_csv(fh)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            checked = load_ohlcv(tmp)  # the same checks a later load applies
        except DataError as exc:
            detail = str(exc).replace(f"{tmp}: ", "")
            raise DataError(
                f"{exchange_id}: the downloaded {symbol} {timeframe} candles fail validation, "
                f"nothing was saved: {detail}"
            ) from None
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return checked


def _to_ms(when: datetime) -> int:
    if not isinstance(when, datetime):
        raise DataError(f"download: expected a datetime, got {when!r}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


def _ms(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000)


def _iso(ms: int) -> str:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")

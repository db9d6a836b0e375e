"""download_ohlcv through ccxt's real binance class, against the local exchange over HTTP.

The exchange replays tests/data/btcusd-1h.csv; its clock stands after the last candle, so
every candle has closed, unless a test moves it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import ccxt
import pandas as pd
import pytest

from tests.conftest import BTC_1H
from trader.download import cache_path, download_ohlcv
from trader.errors import DataError
from trader.localexchange import HttpError, LocalExchange, RequestRecord, http_error, rate_limited, server_error
from trader.ohlcv import load_ohlcv

UTC = timezone.utc
START = datetime(2017, 7, 1, 11, tzinfo=UTC)  # the first candle in the data
LAST = datetime(2017, 11, 3, 10, tzinfo=UTC)  # the last one
HOUR = timedelta(hours=1)
FAST = {"backoff": 0.01}  # retries without real waiting
KLINES = "GET /api/v3/klines"


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return load_ohlcv(BTC_1H)


@pytest.fixture
def ex(candles: pd.DataFrame) -> Iterator[LocalExchange]:
    exchange = LocalExchange(candles)
    exchange.clock.set(LAST + HOUR)  # every candle has closed
    with exchange:
        yield exchange


def klines(ex: LocalExchange, after: int = 0) -> list[RequestRecord]:
    """The candle requests the exchange saw, from request number `after` on."""
    return [r for r in ex.requests[after:] if r.path == "/api/v3/klines"]


def starts(requests: list[RequestRecord]) -> list[int]:
    return [int(r.params["startTime"]) for r in requests]


def spy_pages(client: ccxt.binance) -> list[list]:
    """Every page client.fetch_ohlcv returns from now on, as ccxt parsed the exchange's answer."""
    pages: list[list] = []
    original = client.fetch_ohlcv

    def fetch(*args, **kwargs):
        page = original(*args, **kwargs)
        pages.append(page)
        return page

    client.fetch_ohlcv = fetch
    return pages


def faults_in_turn(ex: LocalExchange, client: ccxt.binance, *faults: HttpError) -> None:
    """One fault per candle request, in this order (rules injected together would all hit the first)."""
    pending = list(faults)
    original = client.fetch_ohlcv

    def fetch(*args, **kwargs):
        if pending:
            ex.inject(KLINES, pending.pop(0))
        return original(*args, **kwargs)

    client.fetch_ohlcv = fetch


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def expected(candles: pd.DataFrame, since: datetime, until: datetime) -> pd.DataFrame:
    return candles.loc[(candles.index >= pd.Timestamp(since)) & (candles.index < pd.Timestamp(until))]


def test_paginates_over_several_pages(ex: LocalExchange, candles: pd.DataFrame, tmp_path: Path) -> None:
    until = START + 96 * HOUR
    seen: list[tuple[int, pd.Timestamp]] = []
    path, frame = download_ohlcv(
        "binance", "BTC/USDT", "1h", START, until,
        cache_dir=tmp_path, exchange=ex.client(), limit=20,
        progress=lambda rows, last: seen.append((rows, last)), **FAST,
    )
    assert path == tmp_path / "binance" / "BTC-USDT_1h.csv" == cache_path(tmp_path, "binance", "BTC/USDT", "1h")
    pd.testing.assert_frame_equal(frame, expected(candles, START, until))
    pd.testing.assert_frame_equal(load_ohlcv(path, "1h"), frame)
    assert path.read_text().splitlines()[:2] == BTC_1H.read_text().splitlines()[:2]  # same CSV format

    pages = klines(ex)
    assert starts(pages) == [ms(START + k * 20 * HOUR) for k in range(5)]
    assert all(r.params["limit"] == "20" and r.params["symbol"] == "BTCUSDT" for r in pages)
    assert [rows for rows, _ in seen] == [20, 40, 60, 80, 96]
    assert seen[-1][1] == pd.Timestamp(until - HOUR)
    assert not list(path.parent.glob("*.tmp*"))  # the temporary file was renamed away


def test_resumes_from_the_cache(ex: LocalExchange, candles: pd.DataFrame, tmp_path: Path) -> None:
    first_until, second_until = START + 50 * HOUR, START + 170 * HOUR
    download_ohlcv("binance", "BTC/USDT", "1h", START, first_until,
                   cache_dir=tmp_path, exchange=ex.client(), limit=40, **FAST)

    mark = len(ex.requests)
    path, frame = download_ohlcv("binance", "BTC/USDT", "1h", START, second_until,
                                 cache_dir=tmp_path, exchange=ex.client(), limit=40, **FAST)
    assert starts(klines(ex, mark)) == [ms(first_until), ms(first_until + 40 * HOUR), ms(first_until + 80 * HOUR)]
    pd.testing.assert_frame_equal(frame, expected(candles, START, second_until))
    pd.testing.assert_frame_equal(load_ohlcv(path), frame)

    # Everything asked for is cached now: no candle request at all.
    mark = len(ex.requests)
    _, again = download_ohlcv("binance", "BTC/USDT", "1h", START + 10 * HOUR, second_until,
                              cache_dir=tmp_path, exchange=ex.client(), limit=40, **FAST)
    assert klines(ex, mark) == []
    pd.testing.assert_frame_equal(again, expected(candles, START + 10 * HOUR, second_until))


def test_an_earlier_since_fills_in_before_the_cache(ex: LocalExchange, candles: pd.DataFrame, tmp_path: Path) -> None:
    middle, until = START + 30 * HOUR, START + 60 * HOUR
    download_ohlcv("binance", "BTC/USDT", "1h", middle, until, cache_dir=tmp_path, exchange=ex.client(), **FAST)
    mark = len(ex.requests)
    path, frame = download_ohlcv("binance", "BTC/USDT", "1h", START, until,
                                 cache_dir=tmp_path, exchange=ex.client(), limit=25, **FAST)
    assert starts(klines(ex, mark)) == [ms(START), ms(START + 25 * HOUR)]
    pd.testing.assert_frame_equal(frame, expected(candles, START, until))
    assert check_contiguous(load_ohlcv(path, "1h"))


def check_contiguous(frame: pd.DataFrame) -> bool:
    return bool((frame.index.to_series().diff().dropna() == pd.Timedelta(hours=1)).all())


def test_the_unclosed_candle_is_never_written(ex: LocalExchange, candles: pd.DataFrame, tmp_path: Path) -> None:
    since = LAST - 30 * HOUR
    now = LAST + 30 * timedelta(minutes=1)  # the last candle is still open
    ex.clock.set(now)
    client = ex.client()
    pages = spy_pages(client)
    path, frame = download_ohlcv("binance", "BTC/USDT", "1h", since,
                                 cache_dir=tmp_path, exchange=client, now=now, **FAST)
    served = {row[0]: row for page in pages for row in page}
    assert served[ms(LAST)][5] == 0  # the exchange did send the open candle (no volume yet)...
    assert frame.index[-1] == pd.Timestamp(LAST - HOUR)  # ...and it was dropped
    assert load_ohlcv(path).index[-1] == pd.Timestamp(LAST - HOUR)

    # Once it has closed, a re-run fetches exactly that candle, now complete.
    ex.clock.set(LAST + HOUR)
    mark = len(ex.requests)
    _, frame = download_ohlcv("binance", "BTC/USDT", "1h", since,
                              cache_dir=tmp_path, exchange=ex.client(), now=LAST + HOUR, **FAST)
    assert starts(klines(ex, mark)) == [ms(LAST)]
    pd.testing.assert_frame_equal(frame, expected(candles, since, LAST + HOUR))


def test_rate_limit_and_server_error_are_retried(ex: LocalExchange, candles: pd.DataFrame, tmp_path: Path) -> None:
    client = ex.client()
    html_500 = HttpError(500, None, "Internal Server Error",
                         raw_body="<html><body><h1>500 Internal Server Error</h1></body></html>")
    faults_in_turn(ex, client, rate_limited(retry_after=1), html_500)
    until = START + 60 * HOUR
    _, frame = download_ohlcv("binance", "BTC/USDT", "1h", START, until,
                              cache_dir=tmp_path, exchange=client, limit=30, **FAST)
    assert [r.status for r in klines(ex)] == [429, 500, 200, 200]
    assert starts(klines(ex)) == [ms(START)] * 3 + [ms(START + 30 * HOUR)]  # the failed page was asked again
    pd.testing.assert_frame_equal(frame, expected(candles, START, until))


def test_binances_own_overload_answer_is_retried(ex: LocalExchange, candles: pd.DataFrame, tmp_path: Path) -> None:
    # 503 with code -1008: ccxt does not know the code and raises a plain ExchangeError;
    # the status says it is the exchange's trouble
    ex.inject(KLINES, server_error(503), times=2)
    until = START + 10 * HOUR
    _, frame = download_ohlcv("binance", "BTC/USDT", "1h", START, until,
                              cache_dir=tmp_path, exchange=ex.client(), **FAST)
    assert [r.status for r in klines(ex)] == [503, 503, 200]
    pd.testing.assert_frame_equal(frame, expected(candles, START, until))


def test_gives_up_after_the_retries(ex: LocalExchange, tmp_path: Path) -> None:
    # A gateway's 503 without a Binance body (ccxt: ExchangeNotAvailable).
    ex.inject(KLINES, HttpError(503, None, "Service Unavailable", raw_body="Service Unavailable"), times=5)
    with pytest.raises(DataError) as info:
        download_ohlcv("binance", "BTC/USDT", "1h", START, START + 10 * HOUR,
                       cache_dir=tmp_path, exchange=ex.client(), retries=2, **FAST)
    message = str(info.value)
    assert message.startswith("binance: fetching BTC/USDT 1h candles from 2017-07-01T11:00:00Z")
    assert "still failing after 3 attempts" in message and "ExchangeNotAvailable" in message
    assert [r.status for r in klines(ex)] == [503] * 3
    assert not (tmp_path / "binance" / "BTC-USDT_1h.csv").exists()


def test_an_interrupted_download_keeps_what_it_fetched(ex: LocalExchange, candles: pd.DataFrame,
                                                       tmp_path: Path) -> None:
    client = ex.client()
    original = client.fetch_ohlcv
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    client.fetch_ohlcv = flaky
    with pytest.raises(KeyboardInterrupt):
        download_ohlcv("binance", "BTC/USDT", "1h", START, START + 100 * HOUR,
                       cache_dir=tmp_path, exchange=client, limit=20, **FAST)
    kept = load_ohlcv(tmp_path / "binance" / "BTC-USDT_1h.csv")
    pd.testing.assert_frame_equal(kept, expected(candles, START, START + 40 * HOUR))


def test_permanent_error_names_the_exchange_and_hides_keys(ex: LocalExchange, tmp_path: Path) -> None:
    client = ex.client(apiKey="TESTKEY-0123456789")
    ex.inject(KLINES, http_error(400, -1130, "Invalid data sent for a parameter. key=TESTKEY-0123456789"))
    with pytest.raises(DataError) as info:
        download_ohlcv("binance", "BTC/USDT", "1h", START, START + 10 * HOUR,
                       cache_dir=tmp_path, exchange=client, **FAST)
    message = str(info.value)
    assert message.startswith("binance: fetching BTC/USDT 1h candles from 2017-07-01T11:00:00Z failed: BadRequest")
    assert "TESTKEY-0123456789" not in message and "***" in message
    assert len(klines(ex)) == 1  # not retried


def test_unknown_symbol(ex: LocalExchange, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"binance: unknown symbol 'BTC/USDC'; did you mean BTC/USDT\?"):
        download_ohlcv("binance", "BTC/USDC", "1h", START, cache_dir=tmp_path, exchange=ex.client(), **FAST)
    assert klines(ex) == []
    # Listed, but the exchange no longer serves it (delisted since the markets were loaded):
    # Binance answers -1121, ccxt raises BadSymbol.
    ex.inject(KLINES, http_error(400, -1121, "Invalid symbol."))
    with pytest.raises(DataError, match=r"binance: unknown symbol 'BTC/USDT' \(binance .*Invalid symbol"):
        download_ohlcv("binance", "BTC/USDT", "1h", START, cache_dir=tmp_path, exchange=ex.client(), **FAST)
    assert [r.status for r in klines(ex)] == [400]  # not retried
    assert not any(tmp_path.rglob("*.csv"))


def test_unsupported_timeframe_and_unknown_exchange(ex: LocalExchange, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"binance: timeframe '7m' is not supported; expected one of 1s, 1m"):
        download_ohlcv("binance", "BTC/USDT", "7m", START, cache_dir=tmp_path, exchange=ex.client())
    with pytest.raises(DataError, match=r"unknown exchange 'binanse'; did you mean binance"):
        download_ohlcv("binanse", "BTC/USDT", "1h", START, cache_dir=tmp_path)
    with pytest.raises(DataError, match="not after since"):
        download_ohlcv("binance", "BTC/USDT", "1h", START, START, cache_dir=tmp_path, exchange=ex.client())
    assert klines(ex) == []


def test_no_candles_in_range(ex: LocalExchange, tmp_path: Path) -> None:
    after = LAST + 100 * HOUR  # the data ends before: the market did not trade then
    ex.clock.set(after + 20 * HOUR)
    with pytest.raises(DataError, match="no closed 1h candles for BTC/USDT between 2017-11-07"):
        download_ohlcv("binance", "BTC/USDT", "1h", after, after + 10 * HOUR,
                       cache_dir=tmp_path, exchange=ex.client(), **FAST)
    assert len(klines(ex)) == 1  # one empty page ends the search


def test_exchange_that_ignores_since_does_not_loop(candles: pd.DataFrame, tmp_path: Path) -> None:
    class SamePage:
        """Answers the same page whatever is asked, like an exchange that ignores `since`."""

        id = "stubborn"
        has = {"fetchOHLCV": True}
        timeframes = {"1h": "1h"}
        markets = {"BTC/USDT": {}}
        calls = 0

        def load_markets(self):
            return self.markets

        def fetch_ohlcv(self, symbol, timeframe, since=None, limit=None):
            self.calls += 1
            if self.calls > 5:  # fail, rather than hang, if the loop is back
                raise AssertionError("download_ohlcv keeps asking for the same page")
            rows = candles.head(10)
            return [[int(t.value // 1_000_000), *row] for t, row in zip(rows.index, rows.to_numpy().tolist())]

    fake = SamePage()
    _, frame = download_ohlcv("stubborn", "BTC/USDT", "1h", START, START + 100 * HOUR,
                              cache_dir=tmp_path, exchange=fake, **FAST)
    assert fake.calls == 2
    pd.testing.assert_frame_equal(frame, candles.head(10))

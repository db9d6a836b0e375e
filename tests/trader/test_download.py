"""download_ohlcv through ccxt's real binance class, against a local Binance stub over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from tests.trader.binance_stub import DATA, BinanceStub, Failure, running_stub
from trader.download import cache_path, download_ohlcv
from trader.errors import DataError
from trader.ohlcv import load_ohlcv

UTC = timezone.utc
START = datetime(2017, 7, 1, 11, tzinfo=UTC)  # the first candle in the data
LAST = datetime(2017, 11, 3, 10, tzinfo=UTC)  # the last one
HOUR = timedelta(hours=1)
FAST = {"backoff": 0.01}  # retries without real waiting


@pytest.fixture
def stub() -> Iterator[BinanceStub]:
    yield from running_stub()


@pytest.fixture(scope="module")
def btc() -> pd.DataFrame:
    return load_ohlcv(DATA)


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def expected(btc: pd.DataFrame, since: datetime, until: datetime) -> pd.DataFrame:
    return btc.loc[(btc.index >= pd.Timestamp(since)) & (btc.index < pd.Timestamp(until))]


def test_paginates_over_several_pages(stub: BinanceStub, btc: pd.DataFrame, tmp_path: Path) -> None:
    until = START + 96 * HOUR
    seen: list[tuple[int, pd.Timestamp]] = []
    path, frame = download_ohlcv(
        "binance", "BTC/USDT", "1h", START, until,
        cache_dir=tmp_path, exchange=stub.exchange(), limit=20,
        progress=lambda rows, last: seen.append((rows, last)), **FAST,
    )
    assert path == tmp_path / "binance" / "BTC-USDT_1h.csv" == cache_path(tmp_path, "binance", "BTC/USDT", "1h")
    pd.testing.assert_frame_equal(frame, expected(btc, START, until))
    pd.testing.assert_frame_equal(load_ohlcv(path, "1h"), frame)
    assert path.read_text().splitlines()[:2] == DATA.read_text().splitlines()[:2]  # same CSV format

    pages = stub.klines()
    assert [int(r.params["startTime"]) for r in pages] == [ms(START + k * 20 * HOUR) for k in range(5)]
    assert all(r.params["limit"] == "20" and r.params["symbol"] == "BTCUSDT" for r in pages)
    assert [rows for rows, _ in seen] == [20, 40, 60, 80, 96]
    assert seen[-1][1] == pd.Timestamp(until - HOUR)
    assert not list(path.parent.glob("*.tmp*"))  # the temporary file was renamed away


def test_resumes_from_the_cache(stub: BinanceStub, btc: pd.DataFrame, tmp_path: Path) -> None:
    first_until, second_until = START + 50 * HOUR, START + 170 * HOUR
    download_ohlcv("binance", "BTC/USDT", "1h", START, first_until,
                   cache_dir=tmp_path, exchange=stub.exchange(), limit=40, **FAST)
    stub.clear()

    path, frame = download_ohlcv("binance", "BTC/USDT", "1h", START, second_until,
                                 cache_dir=tmp_path, exchange=stub.exchange(), limit=40, **FAST)
    starts = [int(r.params["startTime"]) for r in stub.klines()]
    assert starts == [ms(first_until), ms(first_until + 40 * HOUR), ms(first_until + 80 * HOUR)]
    pd.testing.assert_frame_equal(frame, expected(btc, START, second_until))
    pd.testing.assert_frame_equal(load_ohlcv(path), frame)

    # Everything asked for is cached now: no candle request at all.
    stub.clear()
    _, again = download_ohlcv("binance", "BTC/USDT", "1h", START + 10 * HOUR, second_until,
                              cache_dir=tmp_path, exchange=stub.exchange(), limit=40, **FAST)
    assert stub.klines() == []
    pd.testing.assert_frame_equal(again, expected(btc, START + 10 * HOUR, second_until))


def test_an_earlier_since_fills_in_before_the_cache(stub: BinanceStub, btc: pd.DataFrame, tmp_path: Path) -> None:
    middle, until = START + 30 * HOUR, START + 60 * HOUR
    download_ohlcv("binance", "BTC/USDT", "1h", middle, until, cache_dir=tmp_path, exchange=stub.exchange(), **FAST)
    stub.clear()
    path, frame = download_ohlcv("binance", "BTC/USDT", "1h", START, until,
                                 cache_dir=tmp_path, exchange=stub.exchange(), limit=25, **FAST)
    assert [int(r.params["startTime"]) for r in stub.klines()] == [ms(START), ms(START + 25 * HOUR)]
    pd.testing.assert_frame_equal(frame, expected(btc, START, until))
    assert check_contiguous(load_ohlcv(path, "1h"))


def check_contiguous(frame: pd.DataFrame) -> bool:
    return bool((frame.index.to_series().diff().dropna() == pd.Timedelta(hours=1)).all())


def test_the_unclosed_candle_is_never_written(stub: BinanceStub, btc: pd.DataFrame, tmp_path: Path) -> None:
    since = LAST - 30 * HOUR
    now = LAST + 30 * timedelta(minutes=1)  # the last candle is still open
    path, frame = download_ohlcv("binance", "BTC/USDT", "1h", since,
                                 cache_dir=tmp_path, exchange=stub.exchange(), now=now, **FAST)
    served = [t for r in stub.klines() for t in r.rows]
    assert ms(LAST) in served  # the exchange did send the open candle...
    assert frame.index[-1] == pd.Timestamp(LAST - HOUR)  # ...and it was dropped
    assert load_ohlcv(path).index[-1] == pd.Timestamp(LAST - HOUR)

    # Once it has closed, a re-run fetches exactly that candle.
    stub.clear()
    _, frame = download_ohlcv("binance", "BTC/USDT", "1h", since,
                              cache_dir=tmp_path, exchange=stub.exchange(), now=LAST + HOUR, **FAST)
    assert [int(r.params["startTime"]) for r in stub.klines()] == [ms(LAST)]
    pd.testing.assert_frame_equal(frame, expected(btc, since, LAST + HOUR))


def test_rate_limit_and_server_error_are_retried(stub: BinanceStub, btc: pd.DataFrame, tmp_path: Path) -> None:
    stub.failures = [
        Failure(429, json.dumps({"code": -1003, "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE."})),
        Failure(500, "<html><body><h1>500 Internal Server Error</h1></body></html>", "text/html"),
    ]
    until = START + 60 * HOUR
    _, frame = download_ohlcv("binance", "BTC/USDT", "1h", START, until,
                              cache_dir=tmp_path, exchange=stub.exchange(), limit=30, **FAST)
    assert [r.status for r in stub.klines()] == [429, 500, 200, 200]
    pd.testing.assert_frame_equal(frame, expected(btc, START, until))


def test_gives_up_after_the_retries(stub: BinanceStub, tmp_path: Path) -> None:
    stub.failures = [Failure(503, "Service Unavailable", "text/plain")] * 5
    with pytest.raises(DataError) as info:
        download_ohlcv("binance", "BTC/USDT", "1h", START, START + 10 * HOUR,
                       cache_dir=tmp_path, exchange=stub.exchange(), retries=2, **FAST)
    message = str(info.value)
    assert message.startswith("binance: fetching BTC/USDT 1h candles from 2017-07-01T11:00:00Z")
    assert "still failing after 3 attempts" in message and "ExchangeNotAvailable" in message
    assert len(stub.klines()) == 3
    assert not (tmp_path / "binance" / "BTC-USDT_1h.csv").exists()


def test_an_interrupted_download_keeps_what_it_fetched(stub: BinanceStub, btc: pd.DataFrame, tmp_path: Path) -> None:
    exchange = stub.exchange()
    original = exchange.fetch_ohlcv
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    exchange.fetch_ohlcv = flaky
    with pytest.raises(KeyboardInterrupt):
        download_ohlcv("binance", "BTC/USDT", "1h", START, START + 100 * HOUR,
                       cache_dir=tmp_path, exchange=exchange, limit=20, **FAST)
    kept = load_ohlcv(tmp_path / "binance" / "BTC-USDT_1h.csv")
    pd.testing.assert_frame_equal(kept, expected(btc, START, START + 40 * HOUR))


def test_permanent_error_names_the_exchange_and_hides_keys(stub: BinanceStub, tmp_path: Path) -> None:
    exchange = stub.exchange(apiKey="TESTKEY-0123456789")
    stub.failures = [Failure(400, json.dumps({"code": -1130, "msg": "Invalid data sent for a parameter. key=TESTKEY-0123456789"}))]
    with pytest.raises(DataError) as info:
        download_ohlcv("binance", "BTC/USDT", "1h", START, START + 10 * HOUR,
                       cache_dir=tmp_path, exchange=exchange, **FAST)
    message = str(info.value)
    assert message.startswith("binance: fetching BTC/USDT 1h candles from 2017-07-01T11:00:00Z failed: BadRequest")
    assert "TESTKEY-0123456789" not in message and "***" in message
    assert len(stub.klines()) == 1  # not retried


def test_unknown_symbol(stub: BinanceStub, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"binance: unknown symbol 'BTC/USDC'; did you mean BTC/USDT\?"):
        download_ohlcv("binance", "BTC/USDC", "1h", START, cache_dir=tmp_path, exchange=stub.exchange(), **FAST)
    assert stub.klines() == []
    # Listed, but the exchange no longer serves it: Binance answers -1121, ccxt raises BadSymbol.
    with pytest.raises(DataError, match=r"binance: unknown symbol 'ETH/BTC' \(binance .*Invalid symbol"):
        download_ohlcv("binance", "ETH/BTC", "1h", START, cache_dir=tmp_path, exchange=stub.exchange(), **FAST)
    assert not any(tmp_path.rglob("*.csv"))


def test_unsupported_timeframe_and_unknown_exchange(stub: BinanceStub, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"binance: timeframe '7m' is not supported; expected one of 1s, 1m"):
        download_ohlcv("binance", "BTC/USDT", "7m", START, cache_dir=tmp_path, exchange=stub.exchange())
    with pytest.raises(DataError, match=r"unknown exchange 'binanse'; did you mean binance"):
        download_ohlcv("binanse", "BTC/USDT", "1h", START, cache_dir=tmp_path)
    with pytest.raises(DataError, match="not after since"):
        download_ohlcv("binance", "BTC/USDT", "1h", START, START, cache_dir=tmp_path, exchange=stub.exchange())
    assert stub.klines() == []


def test_no_candles_in_range(stub: BinanceStub, tmp_path: Path) -> None:
    after = LAST + 100 * HOUR
    with pytest.raises(DataError, match="no closed 1h candles for BTC/USDT between 2017-11-07"):
        download_ohlcv("binance", "BTC/USDT", "1h", after, after + 10 * HOUR,
                       cache_dir=tmp_path, exchange=stub.exchange(), **FAST)
    assert len(stub.klines()) == 1  # one empty page ends the search


def test_exchange_that_ignores_since_does_not_loop(btc: pd.DataFrame, tmp_path: Path) -> None:
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
            rows = btc.head(10)
            return [[int(t.value // 1_000_000), *row] for t, row in zip(rows.index, rows.to_numpy().tolist())]

    fake = SamePage()
    _, frame = download_ohlcv("stubborn", "BTC/USDT", "1h", START, START + 100 * HOUR,
                              cache_dir=tmp_path, exchange=fake, **FAST)
    assert fake.calls == 2
    pd.testing.assert_frame_equal(frame, btc.head(10))

"""load_ohlcv / check_ohlcv on the real hourly BTC file and on files broken on purpose."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trader.errors import DataError
from trader.ohlcv import COLUMNS, DataReport, check_ohlcv, load_ohlcv

DATA = Path(__file__).resolve().parents[1] / "data" / "btcusd-1h.csv"
LINES = DATA.read_text().splitlines()
HEADER = LINES[0].split(",")


@pytest.fixture(scope="module")
def btc() -> pd.DataFrame:
    return load_ohlcv(DATA)


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def with_cell(tmp_path: Path, line: int, column: str, value: str, name: str = "data.csv") -> Path:
    """The real file with one cell replaced; `line` counts from 1 with the header as line 1."""
    lines = list(LINES)
    fields = lines[line - 1].split(",")
    fields[HEADER.index(column)] = value
    lines[line - 1] = ",".join(fields)
    return write(tmp_path / name, lines)


def error_of(path: Path, timeframe: str | None = None) -> str:
    with pytest.raises(DataError) as info:
        load_ohlcv(path, timeframe)
    return str(info.value)


# -- good files ------------------------------------------------------------------------------


def test_loads_real_hourly_btc(btc: pd.DataFrame) -> None:
    assert list(btc.columns) == list(COLUMNS)
    assert (btc.dtypes == np.float64).all()
    assert isinstance(btc.index, pd.DatetimeIndex)
    assert str(btc.index.tz) == "UTC" and btc.index.name == "timestamp"
    assert len(btc) == 3000 and btc.index.is_monotonic_increasing and btc.index.is_unique
    assert btc.index[0] == pd.Timestamp("2017-07-01T11:00:00Z")
    assert btc.iloc[0].tolist() == [2505.56, 2513.38, 2495.12, 2509.17, 114.6]

    report = check_ohlcv(btc)
    assert report == DataReport(
        rows=3000,
        start=pd.Timestamp("2017-07-01T11:00:00Z"),
        end=pd.Timestamp("2017-11-03T10:00:00Z"),
        timeframe="1h",
        gaps=(),
    )
    assert load_ohlcv(DATA, "1h").equals(btc)


def test_epoch_milliseconds_csv_round_trip(btc: pd.DataFrame, tmp_path: Path) -> None:
    out = btc.copy()
    out.index = out.index.as_unit("ms").asi8  # epoch milliseconds
    out.index.name = "timestamp"
    out.to_csv(tmp_path / "ms.csv")
    pd.testing.assert_frame_equal(load_ohlcv(tmp_path / "ms.csv"), btc)


def test_epoch_seconds_are_recognised(btc: pd.DataFrame, tmp_path: Path) -> None:
    out = btc.head(50).copy()
    out.index = out.index.as_unit("s").asi8  # below 1e11: epoch seconds
    out.index.name = "open_time"
    out.to_csv(tmp_path / "s.csv")
    pd.testing.assert_frame_equal(load_ohlcv(tmp_path / "s.csv"), btc.head(50))


@pytest.mark.parametrize("name", ["candles.parquet", "candles.pq"])
def test_parquet_round_trip(btc: pd.DataFrame, tmp_path: Path, name: str) -> None:
    btc.to_parquet(tmp_path / name)  # time kept as the index, as pandas writes it
    pd.testing.assert_frame_equal(load_ohlcv(tmp_path / name, "1h"), btc)


def test_parquet_with_epoch_column_and_odd_case(btc: pd.DataFrame, tmp_path: Path) -> None:
    out = btc.reset_index()
    out["timestamp"] = out["timestamp"].dt.as_unit("ms").astype("int64")
    out.columns = ["Open_Time", "OPEN", "High", "low", "Close", "Volume"]
    out.to_parquet(tmp_path / "odd.parquet", index=False)
    pd.testing.assert_frame_equal(load_ohlcv(tmp_path / "odd.parquet"), btc)


def test_gzip_csv_and_pandas_default_csv(btc: pd.DataFrame, tmp_path: Path) -> None:
    with gzip.open(tmp_path / "btc.csv.gz", "wt") as fh:
        fh.write(DATA.read_text())
    pd.testing.assert_frame_equal(load_ohlcv(tmp_path / "btc.csv.gz"), btc)
    btc.to_csv(tmp_path / "pandas.csv")  # "2017-07-01 11:00:00+00:00" style times
    pd.testing.assert_frame_equal(load_ohlcv(tmp_path / "pandas.csv"), btc)


def test_column_names_are_case_insensitive_and_volume_optional(btc: pd.DataFrame, tmp_path: Path) -> None:
    lines = [",".join(line.split(",")[:5]) for line in LINES]
    lines[0] = "Date,OPEN,High,low,Close"
    frame = load_ohlcv(write(tmp_path / "novolume.csv", lines))
    assert list(frame.columns) == list(COLUMNS)
    assert (frame["volume"] == 0.0).all()
    pd.testing.assert_frame_equal(frame.drop(columns="volume"), btc.drop(columns="volume"))


def test_offsets_are_converted_to_utc_and_extra_columns_ignored(tmp_path: Path) -> None:
    path = write(tmp_path / "tz.csv", [
        "time,open,high,low,close,volume,trades",
        "2024-01-01T02:00:00+02:00,10,11,9,10.5,1,7",
        "2024-01-01T01:00:00Z,10.5,12,10,11,2,8",
        "2024-01-01 02:00:00,11,11,10,10,3,9",
    ])
    frame = load_ohlcv(path, "1h")
    assert list(frame.index) == list(pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC"))


def test_blank_lines_are_skipped_and_lines_still_counted(tmp_path: Path) -> None:
    lines = list(LINES[:40])
    lines.insert(5, "")  # the old line 6 becomes line 7
    fields = lines[20].split(",")
    fields[2] = "1.0"  # high far below open and close, on file line 21
    lines[20] = ",".join(fields)
    message = error_of(write(tmp_path / "blank.csv", lines + ["", ""]))
    assert "line 21, column 'high'" in message


# -- bad files: every message names the file, the line and the column -------------------------


@pytest.mark.parametrize(
    ("line", "column", "value", "expected"),
    [
        (17, "high", "101.0", "line 17, column 'high': 101.0 is below max(open, close) = 2409.9; expected high >= open, close"),
        (9, "low", "9999", "line 9, column 'low': 9999.0 is above min(open, close)"),
        (30, "open", "-5", "line 30, column 'open': -5.0 is not positive; expected a price > 0"),
        (31, "close", "0", "line 31, column 'close': 0.0 is not positive"),
        (40, "volume", "-1.5", "line 40, column 'volume': -1.5 is negative; expected volume >= 0"),
        (41, "close", "", "line 41, column 'close': missing value; expected a number"),
        (42, "close", "NaN", "line 42, column 'close': missing value"),
        (43, "low", "abc", "line 43, column 'low': 'abc' is not a number"),
        (44, "high", "inf", "line 44, column 'high': inf is not finite"),
        (45, "timestamp", "not-a-date", "line 45, column 'timestamp': 'not-a-date' is not a time; expected an ISO 8601"),
        (46, "timestamp", "", "line 46, column 'timestamp': missing value"),
    ],
)
def test_bad_cell_is_named(tmp_path: Path, line: int, column: str, value: str, expected: str) -> None:
    path = with_cell(tmp_path, line, column, value)
    message = error_of(path)
    assert message.startswith(str(path))
    assert "data.csv" in message
    assert expected in message


def test_duplicate_candle(tmp_path: Path) -> None:
    lines = list(LINES)
    lines[10] = lines[9]  # line 11 repeats line 10
    message = error_of(write(tmp_path / "dup.csv", lines))
    assert "dup.csv: line 11, column 'timestamp': 2017-07-01T19:00:00Z repeats line 10; expected each candle once" in message


def test_unsorted_candles(tmp_path: Path) -> None:
    lines = list(LINES)
    lines[20], lines[21] = lines[21], lines[20]
    message = error_of(write(tmp_path / "unsorted.csv", lines))
    assert "unsorted.csv: line 22, column 'timestamp': 2017-07-02T06:00:00Z is earlier than line 21" in message
    assert "expected times in ascending order" in message


def test_missing_column(tmp_path: Path) -> None:
    lines = [",".join(line.split(",")[:4] + line.split(",")[5:]) for line in LINES]  # drop close
    message = error_of(write(tmp_path / "noclose.csv", lines))
    assert "noclose.csv: line 1: missing column 'close'" in message
    assert "expected timestamp, open, high, low, close" in message


def test_ragged_line(tmp_path: Path) -> None:
    lines = list(LINES)
    lines[12] += ",7"
    message = error_of(write(tmp_path / "ragged.csv", lines))
    assert "ragged.csv" in message and "line 13" in message


def test_only_the_first_five_problems_are_listed(tmp_path: Path) -> None:
    lines = list(LINES)
    for i in range(100, 112):
        fields = lines[i].split(",")
        fields[5] = "-1"
        lines[i] = ",".join(fields)
    message = error_of(write(tmp_path / "many.csv", lines))
    assert "many.csv: 12 problems found (first 5 shown)" in message
    assert message.count("column 'volume'") == 5
    assert "line 101, column 'volume'" in message and "line 106" not in message


def test_parquet_problem_names_the_row(btc: pd.DataFrame, tmp_path: Path) -> None:
    bad = btc.copy()
    bad.iloc[4, bad.columns.get_loc("high")] = 1.0
    bad.to_parquet(tmp_path / "bad.parquet")
    message = error_of(tmp_path / "bad.parquet")
    assert "bad.parquet: row 5, column 'high': 1.0 is below max(open, close)" in message


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", b"", "file is empty"),
        ("blank.csv", b"\n\n  \n", "file is empty"),
        ("header.csv", b"timestamp,open,high,low,close,volume\n", "has a header but no candles"),
        ("junk.csv", bytes(range(256)) * 40, "contains binary data"),
        ("latin.csv", "timestamp,open\n2017,caf\xe9\n".encode("latin-1"), "is not UTF-8 text"),
        ("image.csv", b"\x89PNG\r\n\x1a\n" + bytes(200), "contains binary data"),
        ("junk.parquet", b"this is not parquet at all", "not a readable Parquet file"),
        ("junk.csv.gz", b"not gzip data", "cannot be read"),
        ("candles.txt", b"timestamp,open,high,low,close\n", "unsupported file type"),
    ],
)
def test_unreadable_files_give_a_clear_error(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    message = error_of(path)
    assert name in message and expected in message


def test_parquet_named_csv_and_missing_file(btc: pd.DataFrame, tmp_path: Path) -> None:
    btc.to_parquet(tmp_path / "wrong.csv")
    assert "is a Parquet file" in error_of(tmp_path / "wrong.csv")
    assert "file not found" in error_of(tmp_path / "nowhere.csv")


# -- spacing, gaps and timeframes --------------------------------------------------------------


def test_gaps_are_reported_not_errors(btc: pd.DataFrame, tmp_path: Path) -> None:
    removed = {100, 101, 102, 500}  # frame rows; file lines are +2
    lines = [line for i, line in enumerate(LINES) if i - 1 not in removed]
    frame = load_ohlcv(write(tmp_path / "gappy.csv", lines), "1h")
    report = check_ohlcv(frame, "1h")
    assert report.rows == 3000 - 4 and report.timeframe == "1h"
    assert report.gaps == (
        (btc.index[99], btc.index[103], 3),
        (btc.index[499], btc.index[501], 1),
    )
    assert check_ohlcv(frame).gaps == report.gaps  # inferred timeframe finds the same gaps


def test_minute_data_under_an_hourly_timeframe(tmp_path: Path) -> None:
    minutes = pd.date_range("2024-01-01", periods=240, freq="1min", tz="UTC")
    lines = ["timestamp,open,high,low,close,volume"] + [
        f"{t:%Y-%m-%dT%H:%M:%SZ},100,101,99,100,1" for t in minutes
    ]
    path = write(tmp_path / "minutes.csv", lines)
    assert check_ohlcv(load_ohlcv(path)).timeframe == "1m"
    message = error_of(path, "1h")
    assert "minutes.csv: line 3:" in message
    assert "not a multiple of the timeframe 1h" in message and "looks like 1m candles" in message
    with pytest.raises(DataError, match="not a multiple of the timeframe 1h"):
        check_ohlcv(load_ohlcv(path), "1h")


def test_daily_data_under_an_hourly_timeframe(btc: pd.DataFrame) -> None:
    daily = btc.resample("1D").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    ).dropna()
    assert check_ohlcv(daily).timeframe == "1d"
    with pytest.raises(DataError, match="most candles are 1d apart but the timeframe is 1h"):
        check_ohlcv(daily, "1h")


def test_check_rejects_unknown_timeframe_and_unsorted_frames(btc: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="unknown timeframe"):
        check_ohlcv(btc, "1 hour")
    with pytest.raises(DataError, match="ascending"):
        check_ohlcv(btc.iloc[::-1])
    with pytest.raises(DataError, match="tz-aware DatetimeIndex"):
        check_ohlcv(btc.reset_index())


@pytest.mark.parametrize(("freq", "name"), [("4h", "4h"), ("1D", "1d"), ("15min", "15m"), ("7D", "1w")])
def test_timeframe_is_inferred(freq: str, name: str) -> None:
    index = pd.date_range("2024-01-01", periods=30, freq=freq, tz="UTC", name="timestamp")
    frame = pd.DataFrame({c: 1.0 for c in COLUMNS}, index=index)
    assert check_ohlcv(frame).timeframe == name
    assert check_ohlcv(frame.head(1)).timeframe is None


# -- properties and speed ----------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prices=st.lists(
        st.tuples(*(st.floats(0.01, 1e6, allow_nan=False) for _ in range(4)), st.floats(0, 1e9, allow_nan=False)),
        min_size=1,
        max_size=40,
    )
)
def test_any_valid_frame_survives_csv_and_parquet(tmp_path: Path, prices: list[tuple[float, ...]]) -> None:
    rows = np.array(prices)
    o, a, b, c, v = rows.T
    high, low = np.maximum.reduce([o, a, b, c]), np.minimum.reduce([o, a, b, c])
    index = pd.date_range("2020-01-01", periods=len(rows), freq="1h", tz="UTC", name="timestamp").as_unit("ns")
    frame = pd.DataFrame({"open": o, "high": high, "low": low, "close": c, "volume": v}, index=index)
    frame.to_csv(tmp_path / "p.csv")
    frame.to_parquet(tmp_path / "p.parquet")
    pd.testing.assert_frame_equal(load_ohlcv(tmp_path / "p.csv"), frame, check_freq=False)
    pd.testing.assert_frame_equal(load_ohlcv(tmp_path / "p.parquet"), frame, check_freq=False)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    content=st.one_of(
        st.binary(max_size=400),
        st.text(alphabet="0123456789,.-+eE:TZ naif\n", max_size=300).map(lambda t: (LINES[0] + "\n" + t).encode()),
    ),
    name=st.sampled_from(["fuzz.csv", "fuzz.csv.gz", "fuzz.parquet"]),
)
def test_junk_never_escapes_as_anything_but_data_error(tmp_path: Path, content: bytes, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    try:
        load_ohlcv(path)
    except DataError as exc:
        assert name in str(exc)


@pytest.mark.slow
def test_a_year_of_minutes_loads_quickly(tmp_path: Path) -> None:
    n = 525_600
    rng = np.random.default_rng(1)
    close = 20_000 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = np.r_[close[0], close[:-1]]
    frame = pd.DataFrame(
        {
            "open": open_.round(2),
            "high": (np.maximum(open_, close) + 1).round(2),
            "low": (np.minimum(open_, close) - 1).round(2),
            "close": close.round(2),
            "volume": rng.uniform(0, 10, n).round(4),
        },
        index=pd.date_range("2023-01-01", periods=n, freq="1min", tz="UTC", name="timestamp"),
    )
    out = frame.copy()
    out.index = out.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(tmp_path / "year.csv")
    started = time.perf_counter()
    loaded = load_ohlcv(tmp_path / "year.csv", "1m")
    elapsed = time.perf_counter() - started
    assert len(loaded) == n
    assert elapsed < 3.0, f"loading {n} rows took {elapsed:.2f}s"

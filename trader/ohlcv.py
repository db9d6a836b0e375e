"""Load and check OHLCV candle files (CSV or Parquet) into one canonical frame.

The canonical frame has a tz-aware UTC DatetimeIndex named "timestamp" (the candle's open
time, nanosecond resolution) and float64 columns exactly ``open, high, low, close, volume``.
Everything else in the project (strategies, backtester, engine) may rely on that shape.

Input rules:

* Column names are case-insensitive; extra columns are ignored. The time column is the
  first of ``timestamp, date, datetime, time, open_time`` that is present.
* Times are ISO 8601 strings (no offset means UTC) or epoch numbers: values below 1e11 are
  epoch seconds (1e11 s is the year 5138, so no real data is ambiguous), values from 1e11
  up to 1e14 are epoch milliseconds; anything else is rejected.
* ``volume`` is optional and filled with 0.0 when absent.
* Blank lines in a CSV are skipped; line numbers in messages are the file's own lines
  (the header is line 1), assuming no quoted field spans several lines.

Validation is vectorised: Python only loops to format the first few problems.
"""

from __future__ import annotations

import codecs
import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trader.errors import DataError
from trader.timeframes import timeframe_seconds

COLUMNS = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
TIME_COLUMNS = ("timestamp", "date", "datetime", "time", "open_time")

MAX_PROBLEMS = 5  # shown in one message; the rest are only counted
_HEAD_BYTES = 65536  # read first, to judge the file; the header line must fit in it

_CSV_SUFFIXES = (".csv", ".csv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_EXPECTED_LAYOUT = "a header line like 'timestamp,open,high,low,close,volume' and one line per candle"
_EXPECTED_TIME = "an ISO 8601 time like 2017-07-01T11:00:00Z, or epoch seconds or milliseconds"
# Candles outside this window are typos or wrong units, and nanoseconds cannot hold them anyway.
_MIN_TIME = pd.Timestamp("1970-01-01", tz="UTC")
_MAX_TIME = pd.Timestamp("2200-01-01", tz="UTC")
_NS_PER_S = 1_000_000_000
# Prices a market can quote and a float ledger can trade at capitals up to 1e12: beyond these,
# quantities and equity lose their digits or overflow (1e300 made CAGR overflow).
MIN_PRICE, MAX_PRICE = 1e-12, 1e12
# A longer hole is two histories glued together, not one market: its metrics mean nothing.
_MAX_GAP_NS = 10 * 365 * 86400 * _NS_PER_S
_FUTURE_NS = 86400 * _NS_PER_S  # clocks differ; a day ahead is not a candle that happened

# Spacing units from the largest down, for naming an inferred timeframe the way ccxt does.
_UNITS = (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60))


@dataclass(frozen=True)
class DataReport:
    """What a candle frame holds: its extent, its timeframe and the holes in it.

    Each gap is (last candle before it, first candle after it, number of missing candles).
    """

    rows: int
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    timeframe: str | None
    gaps: tuple[tuple[pd.Timestamp, pd.Timestamp, int], ...]


class _Problems:
    """Collects row-level problems: every one is counted, only the first few are formatted."""

    def __init__(self, locate: Callable[[int], str]) -> None:
        self._locate = locate
        self._items: list[tuple[int, int, str, str]] = []
        self.count = 0

    def add(self, mask: np.ndarray, order: int, column: str, describe: Callable[[int], str]) -> None:
        rows = np.flatnonzero(mask)
        self.count += len(rows)
        for i in rows[:MAX_PROBLEMS]:
            self._items.append((int(i), order, column, describe(int(i))))

    def raise_if_any(self, source: str) -> None:
        if not self.count:
            return
        shown = sorted(self._items)[:MAX_PROBLEMS]
        lines = [f"{self._locate(i)}, column '{col}': {text}" for i, _, col, text in shown]
        if self.count == 1:
            raise DataError(f"{source}: {lines[0]}")
        more = f" (first {len(shown)} shown)" if self.count > len(shown) else ""
        body = "\n".join(f"  {line}" for line in lines)
        raise DataError(f"{source}: {self.count} problems found{more}:\n{body}")


def load_ohlcv(path: str | Path, timeframe: str | None = None) -> pd.DataFrame:
    """Read a CSV (.csv, .csv.gz) or Parquet (.parquet, .pq) candle file and validate it.

    With a timeframe, also checks that the candle spacing fits it (see check_ohlcv).
    Raises DataError naming the file, the line (CSV) or row (Parquet), the column and what
    was expected.
    """
    path = Path(path)
    source = str(path)
    name = path.name.lower()
    try:
        found = path.exists()
    except OSError as exc:  # a name too long, a symlink loop
        raise DataError(f"{source[:200]}: cannot be opened ({exc.strerror}); expected a candle file") from None
    if not found:
        raise DataError(f"{source}: file not found")
    if path.is_dir():
        raise DataError(f"{source}: is a directory; expected a .csv, .csv.gz or .parquet file")
    if not path.is_file():  # a FIFO or a device would block or never end
        raise DataError(f"{source}: not a regular file; expected a .csv, .csv.gz or .parquet file")

    if name.endswith(_CSV_SUFFIXES):
        raw = _read_csv(path, source)
        # Header is line 1, so row i of the frame is line i + 2 (blank lines kept until now).
        lines = np.arange(len(raw), dtype=np.int64) + 2
        blank = raw.isna().all(axis=1).to_numpy() if len(raw.columns) else np.zeros(0, bool)
        if blank.any():
            raw = raw.loc[~blank].reset_index(drop=True)
            lines = lines[~blank]
        locate: Callable[[int], str] = lambda i: f"line {lines[i]}"
    elif name.endswith(_PARQUET_SUFFIXES):
        raw = _read_parquet(path, source)
        locate = lambda i: f"row {i + 1}"
    else:
        raise DataError(f"{source}: unsupported file type; expected .csv, .csv.gz, .parquet or .pq")

    if len(raw) == 0:
        raise DataError(f"{source}: has a header but no candles; expected {_EXPECTED_LAYOUT}")

    try:
        frame = _to_canonical(raw, source, locate)
    except (TypeError, ValueError, OverflowError) as exc:  # e.g. Parquet columns holding lists
        raise DataError(f"{source}: cannot be read as candles ({type(exc).__name__}: {exc})") from None
    if timeframe is not None:
        _check(frame, timeframe, source, locate)
    return frame


def require_history(frame: pd.DataFrame, config, source: str) -> None:
    """DataError unless the file holds more candles than the strategy's warm-up: with fewer,
    nothing can be traded and every metric would be a meaningless zero."""
    needed = config.strategy_def().warmup(config.params) + 1
    if len(frame) < needed:
        raise DataError(f"{source}: {len(frame)} candle(s); expected at least {needed} "
                        f"({config.strategy}'s warm-up with these params is {needed - 1} bars)")


def check_ohlcv(df: pd.DataFrame, timeframe: str | None = None) -> DataReport:
    """Describe a canonical candle frame: rows, extent, timeframe and gaps.

    The timeframe is inferred from the median spacing when not given. With a timeframe,
    every spacing must be a whole multiple of it, and the typical spacing must equal it
    (1m data under a 1h config, or daily data under 1h, is a DataError). Gaps are
    reported, not errors.
    """
    if not isinstance(df.index, pd.DatetimeIndex) or df.index.tz is None:
        raise DataError("candles: expected a tz-aware DatetimeIndex of candle open times (use load_ohlcv)")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"candles: missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
    ns = _index_ns(df.index)
    bad = np.flatnonzero(np.diff(ns) <= 0)
    if len(bad):
        i = int(bad[0]) + 1
        raise DataError(
            f"candles: {_iso(ns[i])} (position {i + 1}) does not come after {_iso(ns[i - 1])}; "
            "expected strictly ascending, unique candle times"
        )
    return _check(df, timeframe, "candles", lambda i: f"position {i + 1}")


def _read_csv(path: Path, source: str) -> pd.DataFrame:
    _reject_binary(path, source)
    try:
        return pd.read_csv(
            path,
            skip_blank_lines=False,  # keep blank lines so row positions map to file lines
            low_memory=False,
            encoding="utf-8",
            compression="infer",
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{source}: file is empty; expected {_EXPECTED_LAYOUT}") from None
    except MemoryError:
        raise DataError(f"{source}: too large to load into memory; expected a smaller file "
                        "(fewer candles, or split it)") from None
    except pd.errors.ParserError as exc:
        detail = str(exc).replace("Error tokenizing data. C error: ", "").strip()
        if "out of memory" in detail:  # the C parser's own MemoryError, e.g. a gzip bomb
            raise DataError(f"{source}: too large to load into memory once decompressed; expected a smaller "
                            "file (fewer candles, or split it)") from None
        raise DataError(f"{source}: not a valid CSV: {detail}; expected the same number of fields on every line") from None
    except UnicodeDecodeError:
        raise DataError(f"{source}: is not UTF-8 text; expected a CSV text file") from None
    except (OSError, EOFError, ValueError) as exc:  # gzip/zlib errors, odd encodings
        raise DataError(f"{source}: cannot be read as CSV ({exc}); expected {_EXPECTED_LAYOUT}") from None


def _reject_binary(path: Path, source: str) -> None:
    """Give binary junk a clear message before the CSV parser produces a confusing one."""
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except (OSError, EOFError) as exc:
        raise DataError(f"{source}: cannot be read ({exc}); expected a gzip-compressed CSV file") from None
    if not head.strip():
        raise DataError(f"{source}: file is empty; expected {_EXPECTED_LAYOUT}")
    if len(head) == _HEAD_BYTES and b"\n" not in head:  # the parser would hold it all in memory
        raise DataError(f"{source}: line 1 is longer than {_HEAD_BYTES:,} bytes; expected {_EXPECTED_LAYOUT}")
    if head.startswith(b"PAR1"):
        raise DataError(f"{source}: is a Parquet file; name it .parquet to load it")
    if b"\x00" in head:
        raise DataError(f"{source}: contains binary data; expected a CSV text file")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        raise DataError(f"{source}: is not UTF-8 text; expected a CSV text file") from None


def _read_parquet(path: Path, source: str) -> pd.DataFrame:
    from .extras import require

    require("parquet")  # pandas' own ImportError would read as a damaged file below
    try:
        raw = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for junk files
        raise DataError(f"{source}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    # Frames written by pandas keep their time index; bring it back as a column.
    if isinstance(raw.index, pd.DatetimeIndex) or str(raw.index.name or "").lower() in TIME_COLUMNS:
        raw = raw.reset_index()
    return raw.reset_index(drop=True)


def _to_canonical(raw: pd.DataFrame, source: str, locate: Callable[[int], str]) -> pd.DataFrame:
    columns = _find_columns(raw, source)
    problems = _Problems(locate)
    n = len(raw)

    time_col = columns["timestamp"]
    ns, time_bad, time_text = _parse_times(raw[time_col])
    time_missing = raw[time_col].isna().to_numpy()
    problems.add(time_missing, 0, time_col, lambda i: f"missing value; expected {_EXPECTED_TIME}")
    problems.add(time_bad, 0, time_col, lambda i: f"{time_text(i)}; expected {_EXPECTED_TIME}")

    values: dict[str, np.ndarray] = {}
    for order, col in enumerate(COLUMNS, start=1):
        if col not in columns:  # only volume may be absent
            values[col] = np.zeros(n, dtype=np.float64)
            continue
        values[col] = _parse_numbers(raw[columns[col]], order, columns[col], problems)

    o, h, l, c, v = (values[k] for k in COLUMNS)
    with np.errstate(invalid="ignore"):  # NaN marks a cell already reported
        for order, col in enumerate(PRICE_COLUMNS, start=1):
            x = values[col]
            problems.add(x <= 0, order, columns[col], lambda i, x=x: f"{_num(x[i])} is not positive; expected a price > 0")
            problems.add((x > 0) & ((x < MIN_PRICE) | (x > MAX_PRICE)), order, columns[col],
                         lambda i, x=x: f"{_num(x[i])} cannot be traded; expected a price from {MIN_PRICE:g} to {MAX_PRICE:g}")
        if "volume" in columns:
            problems.add(v < 0, 5, columns["volume"], lambda i: f"{_num(v[i])} is negative; expected volume >= 0")
        top, bottom = np.maximum(o, c), np.minimum(o, c)
        problems.add(
            h < top, 2, columns["high"],
            lambda i: f"{_num(h[i])} is below max(open, close) = {_num(top[i])}; expected high >= open, close",
        )
        problems.add(
            l > bottom, 3, columns["low"],
            lambda i: f"{_num(l[i])} is above min(open, close) = {_num(bottom[i])}; expected low <= open, close",
        )

    valid = np.flatnonzero(~(time_missing | time_bad))
    future = np.zeros(n, dtype=bool)
    future[valid] = ns[valid] > pd.Timestamp.now(tz="UTC").value + _FUTURE_NS
    problems.add(future, 0, time_col, lambda i: f"{_iso(ns[i])} is in the future; expected candles that happened")

    # Order checks compare each valid time with the previous valid one.
    if len(valid) > 1:
        step = np.diff(ns[valid])
        at = np.zeros(n, dtype=bool)
        prev = np.full(n, -1, dtype=np.int64)
        prev[valid[1:]] = valid[:-1]
        at[valid[1:][step == 0]] = True
        problems.add(
            at, 0, time_col,
            lambda i: f"{_iso(ns[i])} repeats {locate(int(prev[i]))}; expected each candle once",
        )
        at = np.zeros(n, dtype=bool)
        at[valid[1:][step < 0]] = True
        problems.add(
            at, 0, time_col,
            lambda i: f"{_iso(ns[i])} is earlier than {locate(int(prev[i]))} ({_iso(ns[prev[i]])}); "
            "expected times in ascending order",
        )
        at = np.zeros(n, dtype=bool)
        at[valid[1:][step > _MAX_GAP_NS]] = True
        problems.add(
            at, 0, time_col,
            lambda i: f"{_iso(ns[i])} comes {(ns[i] - ns[prev[i]]) / (365 * 86400 * _NS_PER_S):.0f} years after "
            f"{locate(int(prev[i]))}; expected one market's history, with gaps under 10 years",
        )

    problems.raise_if_any(source)
    index = pd.DatetimeIndex(ns.view("M8[ns]"), name="timestamp").tz_localize("UTC")
    return pd.DataFrame({k: values[k] for k in COLUMNS}, index=index)


def _find_columns(raw: pd.DataFrame, source: str) -> dict[str, str]:
    """Map canonical names to the file's own column names, case-insensitively."""
    by_lower: dict[str, str] = {}
    for original in raw.columns:
        key = str(original).strip().lstrip("\ufeff").lower()
        if key in by_lower and key in (*TIME_COLUMNS, *COLUMNS):
            raise DataError(
                f"{source}: columns '{by_lower[key]}' and '{original}' are the same name; expected each column once"
            )
        by_lower.setdefault(key, str(original))
    found = {k: by_lower[k] for k in COLUMNS if k in by_lower}
    time_key = next((k for k in TIME_COLUMNS if k in by_lower), None)
    missing = [k for k in PRICE_COLUMNS if k not in found]
    if time_key is None:
        missing.insert(0, "timestamp")
    else:
        found["timestamp"] = by_lower[time_key]
    if missing:
        have = ", ".join(repr(str(c)) for c in raw.columns[:10]) or "none"
        names = ", ".join(f"'{m}'" for m in missing)
        raise DataError(
            f"{source}: line 1: missing column {names}; found columns {have}; "
            "expected timestamp, open, high, low, close and optionally volume"
        )
    return found


def _parse_times(col: pd.Series) -> tuple[np.ndarray, np.ndarray, Callable[[int], str]]:
    """Times as int64 ns since the epoch, a mask of unusable cells, and a describer for them."""
    present = col.notna().to_numpy()
    if isinstance(col.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(col.dtype):
        times = col if isinstance(col.dtype, pd.DatetimeTZDtype) else col.dt.tz_localize("UTC")
        return _times_to_ns(times.dt.tz_convert("UTC"), present, col)

    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        numbers = col.astype("float64")
    else:
        # Decide by a sample: epoch numbers stored as text, or ISO strings.
        sample = col[present].iloc[:100]
        as_num = pd.to_numeric(sample, errors="coerce")
        if len(sample) and as_num.notna().mean() > 0.5:
            numbers = pd.to_numeric(col, errors="coerce")
        else:
            parsed = pd.to_datetime(col, format="ISO8601", utc=True, errors="coerce")
            return _times_to_ns(parsed, present, col)
    return _epoch_to_ns(numbers, present, col)


def _epoch_to_ns(numbers: pd.Series, present: np.ndarray, col: pd.Series):
    x = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        seconds = (x >= 0) & (x < 1e11)
        millis = (x >= 1e11) & (x < 1e14)
    ok = seconds | millis
    ns = np.zeros(len(x), dtype=np.int64)
    ns[seconds] = np.round(x[seconds] * 1000).astype(np.int64) * 1_000_000
    ns[millis] = np.round(x[millis]).astype(np.int64) * 1_000_000
    bad = present & ~ok

    def describe(i: int) -> str:
        text = _cell(col.iloc[i])
        if np.isnan(x[i]):
            return f"{text} is not a time"
        return f"{text} is not epoch seconds (< 1e11) or milliseconds (< 1e14)"

    return ns, bad, describe


def _times_to_ns(times: pd.Series, present: np.ndarray, col: pd.Series):
    ok_np = ((times >= _MIN_TIME) & (times < _MAX_TIME)).to_numpy(dtype=bool, na_value=False)  # NaT: False
    bad = present & ~ok_np
    ns = np.zeros(len(times), dtype=np.int64)
    if ok_np.any():
        ns[ok_np] = _as_ns(times[ok_np])

    def describe(i: int) -> str:
        text = _cell(col.iloc[i])
        if pd.isna(times.iloc[i]):
            return f"{text} is not a time"
        return f"{text} is outside 1970..2200"

    return ns, bad, describe


def _as_ns(times: pd.Series) -> np.ndarray:
    return times.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]").to_numpy().view("i8")


def _parse_numbers(col: pd.Series, order: int, name: str, problems: _Problems) -> np.ndarray:
    """Float64 values with NaN in every reported cell, so later checks skip them."""
    missing = col.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        x = col.to_numpy(dtype=np.float64, na_value=np.nan)
        junk = np.zeros(len(x), dtype=bool)
    else:
        x = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        junk = ~missing & np.isnan(x)
    infinite = np.isinf(x)
    problems.add(missing, order, name, lambda i: "missing value; expected a number")
    problems.add(junk, order, name, lambda i: f"{_cell(col.iloc[i])} is not a number; expected a decimal number")
    problems.add(infinite, order, name, lambda i: f"{_num(x[i])} is not finite; expected a finite number")
    x = x.copy()
    x[infinite] = np.nan
    return x


def _check(df: pd.DataFrame, timeframe: str | None, source: str, locate: Callable[[int], str]) -> DataReport:
    ns = _index_ns(df.index)
    n = len(ns)
    start = df.index[0] if n else None
    end = df.index[-1] if n else None
    spacing = np.diff(ns) // _NS_PER_S  # whole seconds; candles never start mid-second
    inferred = _name_timeframe(int(np.median(spacing))) if n > 1 else None

    if timeframe is None:
        step = timeframe_seconds(inferred) if inferred else None
        name = inferred
    else:
        try:
            step = timeframe_seconds(timeframe)
        except ValueError as exc:
            raise DataError(f"{source}: {exc}") from None
        name = timeframe
        off = np.flatnonzero(spacing % step != 0)
        if len(off):
            i = int(off[0]) + 1
            looks = f"; the data looks like {inferred} candles" if inferred else ""
            raise DataError(
                f"{source}: {locate(i)}: candle at {_iso(ns[i])} is {_span(spacing[i - 1])} after the previous one, "
                f"which is not a multiple of the timeframe {timeframe} ({len(off)} such spacing(s){looks}); "
                f"expected {timeframe} candles"
            )
        if n > 1 and np.median(spacing) > step:
            raise DataError(
                f"{source}: most candles are {_span(int(np.median(spacing)))} apart but the timeframe is {timeframe}; "
                f"expected {timeframe} candles (resample the data or change the timeframe)"
            )

    gaps: tuple[tuple[pd.Timestamp, pd.Timestamp, int], ...] = ()
    if step:
        at = np.flatnonzero(spacing > step)
        gaps = tuple(
            (df.index[i], df.index[i + 1], int(spacing[i] // step) - 1)
            for i in at.tolist()
        )
    return DataReport(rows=n, start=start, end=end, timeframe=name, gaps=gaps)


def _index_ns(index: pd.DatetimeIndex) -> np.ndarray:
    return index.tz_convert("UTC").tz_localize(None).as_unit("ns").asi8


def _name_timeframe(seconds: int) -> str | None:
    """'1h' for 3600 and so on; None for spacing finer than a minute or not a whole unit."""
    for unit, size in _UNITS:
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return None


def _span(seconds: int) -> str:
    return _name_timeframe(int(seconds)) or f"{int(seconds)}s"


def _cell(value: object) -> str:
    """A cell as the user wrote it: numbers plainly, text quoted."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        f = float(value)
        return str(int(f)) if f.is_integer() and abs(f) < 1e18 else repr(f)
    return repr(str(value))


def _num(x: float) -> str:
    return repr(float(x))


def _iso(ns: int) -> str:
    return pd.Timestamp(int(ns), unit="ns", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")

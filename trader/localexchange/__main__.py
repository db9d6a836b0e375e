"""Serve the local exchange: a Binance-speaking exchange on your machine, to run a daemon
against without an account or real money, and to rehearse how a deployment behaves when the
exchange misbehaves.

    python -m trader.localexchange --data candles.csv --port 8765 --symbol BTC/USDT

Then point the daemon at it: TRADER_EXCHANGE_URL=http://127.0.0.1:8765 with
EXCHANGE_API_KEY/EXCHANGE_API_SECRET set to the keys printed at start. The clock stands
still unless --advance-every is given (one candle per that many real seconds), or
--realtime: the candles are shifted so the start candle is the one in progress now, and
the clock follows the real one (what a daemon scheduling on wall time needs).

Rehearsals: --fault plays a fault on the requests it names (repeatable; see
trader.localexchange.faults), --skew puts the exchange's clock out of step with yours (Binance
refuses a request stamped more than 1 s ahead of its clock or older than its window), and
--log-requests prints every request served with its answer's status.

    python -m trader.localexchange --data candles.csv --realtime --log-requests \
        --fault 'rate_limited:30 on * times 5' --fault 'drop_after_accept on POST /api/v3/order'
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

import pandas as pd

from trader.errors import InputError
from trader.localexchange.clock import to_ms
from trader.localexchange.faults import SPEC_FORM, parse_spec
from trader.localexchange.fees import FeeMode
from trader.localexchange.server import LocalExchange, request_log
from trader.ohlcv import load_ohlcv


def _balance(text: str) -> tuple[str, float]:
    asset, sep, amount = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return asset.strip().upper(), float(amount)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected ASSET=AMOUNT, like USDT=10000") from None


def _fault(text: str) -> tuple:
    try:
        return parse_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _shift_to_now(candles: pd.DataFrame, start: str | None) -> pd.DataFrame:
    """The candles moved in time so the start candle (default: the second) is in progress now."""
    step = candles.index.to_series().diff().mode().iloc[0]  # the timeframe; larger steps are gaps
    i = candles.index.searchsorted(pd.Timestamp(to_ms(start), unit="ms", tz="UTC")) if start else 1
    if not 0 < i < len(candles):
        raise ValueError(f"--start {start}: expected a time after the first candle and within the data")
    shifted = candles.copy()
    shifted.index = candles.index + (pd.Timestamp.now(tz="UTC").floor(step) - candles.index[i])
    return shifted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trader.localexchange", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="candle file (CSV or Parquet, as load_ohlcv reads)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--symbol", default="BTC/USDT")
    parser.add_argument("--balance", type=_balance, action="append", metavar="ASSET=AMOUNT",
                        help="starting balance, repeatable (default USDT=10000)")
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--secret", default="test-secret")
    parser.add_argument("--partial-fills", type=int, default=1)
    parser.add_argument("--fee-rate", type=float, default=0.001)
    parser.add_argument("--fee-mode", choices=[m.value for m in FeeMode], default=FeeMode.QUOTE.value,
                        help="fees in the quote currency, from the base a buy receives (Binance's default), "
                             "or in BNB at 300 (give the account some: --balance BNB=5)")
    parser.add_argument("--start", help="clock start (ISO time); default: the second candle's open")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--advance-every", type=float, default=0.0, metavar="SECONDS",
                      help="move the clock one candle forward every SECONDS real seconds (0: never)")
    pace.add_argument("--realtime", action="store_true",
                      help="replay at real speed: the start candle is the one in progress now")
    parser.add_argument("--fault", type=_fault, action="append", default=[], metavar="SPEC",
                        help=f"play a fault, repeatable: {SPEC_FORM}".replace("%", "%%"))
    parser.add_argument("--skew", type=float, default=0.0, metavar="SECONDS",
                        help="the exchange's clock this far ahead of yours (negative: behind)")
    parser.add_argument("--log-requests", action="store_true", help="print every request served, with its status")
    args = parser.parse_args(argv)
    try:
        candles = load_ohlcv(args.data)
        if args.realtime:
            candles = _shift_to_now(candles, args.start)
            args.start = None
        exchange = LocalExchange(
            candles, args.symbol, dict(args.balance) if args.balance else None, args.api_key, args.secret,
            args.partial_fills, args.fee_rate, host=args.host, port=args.port, fee_mode=args.fee_mode,
        )
    except (InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.realtime:
        exchange.clock.set(time.time() * 1000)
    elif args.start:
        exchange.clock.set(args.start)
    exchange.clock.skew_ms = int(args.skew * 1000)
    for pattern, fault, times in args.fault:
        exchange.inject(pattern, fault, times)
    if args.log_requests:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        request_log.addHandler(handler)
        request_log.setLevel(logging.INFO)
    exchange.start()
    print(f"local exchange for {exchange.spec.symbol} at {exchange.base_url} (clock {exchange.clock.now():%Y-%m-%d %H:%M}Z)")
    print(f"keys: EXCHANGE_API_KEY={args.api_key} EXCHANGE_API_SECRET={args.secret}; Ctrl-C stops")
    stop = threading.Event()
    try:
        while not stop.wait(0.2 if args.realtime else args.advance_every or 3600):
            if args.realtime:
                exchange.clock.set(time.time() * 1000)
            elif args.advance_every:
                exchange.clock.advance(exchange.candles.interval_ms)
    except KeyboardInterrupt:
        pass
    finally:
        exchange.stop()
    if args.fault:
        print(f"faults played: {len(exchange.faults.applied)}; rules with uses left: {exchange.faults.pending()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

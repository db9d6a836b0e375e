"""The `trader` command. Heavy libraries are imported inside the commands so that
`trader --help` starts fast; bad input ends with a clear message and exit code 2."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

from .cliutil import dispatch, output_path, parse_time
from .configdir import default_path
from .errors import InputError


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch(_parser(), argv)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trader",
        description="A self-improving crypto trading daemon: one strategy, one market, paper by default.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    bt = sub.add_parser("backtest", help="backtest the strategy file on an OHLCV file")
    bt.add_argument("--config", default=default_path("strategy.yaml"), help="strategy YAML (default: %(default)s)")
    bt.add_argument("--data", required=True, help="OHLCV file: CSV or Parquet")
    bt.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    bt.add_argument("--plot", metavar="PNG", help="write an equity and drawdown chart: a .png, .svg or .pdf file "
                    "(missing folders are created)")
    bt.add_argument("--fills", metavar="CSV", help="write every simulated fill to a CSV file (missing folders are created)")
    bt.add_argument("--start", metavar="TIME", help="first candle to use, ISO 8601 (default: the file's first)")
    bt.add_argument("--end", metavar="TIME", help="use candles opening before this time, ISO 8601 (default: all)")
    bt.set_defaults(handler=_backtest)

    check = sub.add_parser("check", help="validate the strategy file and print its version")
    check.add_argument("--config", default=default_path("strategy.yaml"), help="strategy YAML (default: %(default)s)")
    check.set_defaults(handler=_check)

    lst = sub.add_parser("strategies", help="list the strategy library and each one's parameters")
    lst.set_defaults(handler=_strategies)

    data = sub.add_parser("data", help="market data: download, inspect")
    data_sub = data.add_subparsers(title="data commands", metavar="COMMAND")
    dl = data_sub.add_parser("download", help="download candles through ccxt into the local cache")
    dl.add_argument("--exchange", required=True, help="ccxt exchange id, e.g. binance")
    dl.add_argument("--symbol", required=True, help="market, e.g. BTC/USDT")
    dl.add_argument("--timeframe", required=True, help="candle size, e.g. 1h")
    dl.add_argument("--since", required=True, help="first candle, ISO date, e.g. 2024-01-01")
    dl.add_argument("--until", help="last candle (default: now)")
    dl.add_argument("--cache-dir", help="where candles are kept (default: $TRADER_DATA_DIR/ohlcv or ./data/ohlcv)")
    dl.set_defaults(handler=_download)
    info = data_sub.add_parser("check", help="validate an OHLCV file and report its gaps")
    info.add_argument("file", help="OHLCV file: CSV or Parquet")
    info.add_argument("--timeframe", help="expected candle size")
    info.set_defaults(handler=_data_check)
    data.set_defaults(handler=lambda _args: data.print_help() or 2)

    from .cli_daemon import add_commands
    from .onboarding import add_command as add_init

    add_commands(sub)
    add_init(sub)
    from .cli_backup import add_command as add_backup

    add_backup(sub)
    return parser


# -- commands --------------------------------------------------------------------------------


def _backtest(args: argparse.Namespace) -> int:
    from .backtest import run_backtest
    from .config import load_strategy_config
    from .ohlcv import load_ohlcv, require_history
    from . import terminal

    # the output paths first: a long backtest is not run for a chart or a CSV that cannot be written
    plot = output_path(args.plot, "--plot", "a .png, .svg or .pdf file path",
                       PLOT_SUFFIXES) if args.plot else None
    fills = output_path(args.fills, "--fills", "a CSV file path") if args.fills else None
    config = load_strategy_config(args.config)
    with terminal.phases(enabled=not args.json) as phase:
        phase("loading candles")
        ohlcv = _cut(load_ohlcv(args.data, timeframe=config.timeframe), args)
        require_history(ohlcv, config, str(args.data))
        phase(f"backtesting {len(ohlcv):,} bars")
        result = run_backtest(ohlcv, config, one_off=True)  # this process runs one: numba only for long files
        written = []
        if plot:
            phase("drawing the chart")
            from .plot import plot_equity

            title = f"{config.name}: {config.strategy} on {config.symbol} {config.timeframe} ({config.version})"
            with _writing("--plot", *plot, written, "chart") as path:
                plot_equity(result.equity, ohlcv["close"], title, path)
    if fills:
        from .files import write_atomically

        with _writing("--fills", *fills, written, f"{len(result.fills):,} fills") as path:
            frame = result.fills_frame()
            write_atomically(path, lambda handle: frame.to_csv(handle, index=False))
    if args.json:
        print(json.dumps(result.metrics.to_dict()))
        for line in written:  # stdout stays one JSON object
            print(line, file=sys.stderr)
    else:
        terminal.print_metrics(config, ohlcv, result)
        for line in written:
            print(line)
    return 0


PLOT_SUFFIXES = (".png", ".svg", ".pdf")  # what the chart is written as (matplotlib picks by the suffix)


@contextmanager
def _writing(flag: str, path: Path, missing: Path | None, written: list[str], what: str):
    """Write `path` (checked by output_path), creating its missing folders; a line for the user
    goes to `written`, and an OS error (a full disk) ends as the flag's error, not a traceback."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield path
    except OSError as exc:
        raise InputError(f"{flag} {path}: cannot be written ({exc.strerror or exc})") from None
    written.append(f"{what} written to {path}" + (f" (created the folder {missing})" if missing else ""))


def _cut(ohlcv, args: argparse.Namespace):
    """The candles from --start (inclusive) to --end (exclusive)."""
    start = parse_time(args.start, "--start") if args.start else None
    end = parse_time(args.end, "--end") if args.end else None
    if start is not None and end is not None and end <= start:
        raise InputError(f"--end {args.end} is not after --start {args.start}")
    index = ohlcv.index
    keep = (index >= start if start is not None else True) & (index < end if end is not None else True)
    if start is None and end is None:
        return ohlcv
    cut = ohlcv[keep]
    if cut.empty:
        raise InputError(f"{args.data}: no candles between {args.start or 'the start'} and {args.end or 'the end'}; "
                         f"the file covers {index[0]:%Y-%m-%d %H:%M} to {index[-1]:%Y-%m-%d %H:%M}")
    return cut


def _check(args: argparse.Namespace) -> int:
    from .config import load_strategy_config

    config = load_strategy_config(args.config)
    print(f"{args.config}: ok, strategy version {config.version}")
    print(f"  {config.strategy} on {config.exchange} {config.symbol} {config.timeframe}, params {config.params.model_dump()}")
    return 0


def _strategies(args: argparse.Namespace) -> int:
    import strategies

    for name, strategy in sorted(strategies.REGISTRY.items()):
        print(f"{name}: {strategy.description}")
        for field, info in strategy.params.model_fields.items():
            print(f"    {field} = {info.default!r}  {info.description or ''}")
    return 0


def _download(args: argparse.Namespace) -> int:
    from .download import download_ohlcv
    from . import terminal

    since = parse_time(args.since, "--since")
    until = parse_time(args.until, "--until") if args.until else None
    cache_dir = Path(args.cache_dir) if args.cache_dir else _data_dir() / "ohlcv"
    with terminal.counter("downloading candles") as advance:
        path, frame = download_ohlcv(
            args.exchange, args.symbol, args.timeframe, since, until,
            cache_dir=cache_dir, progress=advance,
        )
    print(f"{len(frame):,} candles of {args.symbol} {args.timeframe} from {args.exchange} in {path}")
    return 0


def _data_check(args: argparse.Namespace) -> int:
    from .ohlcv import check_ohlcv, load_ohlcv

    frame = load_ohlcv(args.file, timeframe=args.timeframe)
    report = check_ohlcv(frame, timeframe=args.timeframe)
    print(f"{args.file}: {report.rows:,} candles, {report.start} to {report.end}, timeframe {report.timeframe}")
    if report.gaps:
        print(f"  {len(report.gaps)} gap(s):")
        for start, end, missing in report.gaps[:20]:
            print(f"    {start} -> {end}: {missing} missing")
    else:
        print("  no gaps")
    return 0


def _data_dir() -> Path:
    import os

    return Path(os.environ.get("TRADER_DATA_DIR", "data"))


if __name__ == "__main__":
    raise SystemExit(main())

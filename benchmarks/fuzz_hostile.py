"""Hostile-input fuzzer (issue 12): YAML structure and aliases, special files, CSV shapes and
magnitudes, CLI arguments and user text with markup, each case through the real CLI entry
point (`trader.cli.main`) in a forked child with a time and a memory cap. A case fails on a
traceback, a hang (time cap), a death by signal (memory cap), or exit 0 with metrics that
are not finite or are absurd.

    .venv/bin/python benchmarks/fuzz_hostile.py [--cases 2000] [--seed 1] [--timeout 20]
                                                [--memory-mb 2500] [--json FILE]

The children are forked from a parent that has imported the CLI once, so a case costs tens
of milliseconds, not a fresh interpreter; tests/reliability/test_fuzz.py runs a small sample.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STRATEGY = (ROOT / "config/strategy.yaml").read_text()
GOALS = (ROOT / "config/goals.yaml").read_text()
CANDLES = (ROOT / "tests/data/btcusd-1h.csv").read_text().splitlines(keepends=True)
MARKUP = ["[/]", "[link=http://evil.example]x[/link]", "$x^$", "<!channel>", "@everyone", "[b]x", "\\e]8;;x\\a",
          "{{7*7}}", "%s%n", "‮txt", "' OR 1=1 --", "\\x00"]
MAX_ABS_RETURN = 1e6  # a total return beyond a million-fold is a units error, not a strategy


# -- case generators: each returns (kind, argv) after writing its files into `folder` ---------------


def yaml_case(rng: random.Random, folder: Path) -> tuple[str, list[str]]:
    goals = rng.random() < 0.3
    text = GOALS if goals else STRATEGY
    kind = rng.choice(["alias_bomb", "alias_recursive", "duplicate", "deep", "wide", "markup_name", "huge_scalar",
                       "tags", "merge", "binary", "number", "truncate"])
    if kind == "alias_bomb":
        levels = rng.randint(5, 40)
        rows = ["  a0: &a0 [x]"] + [f"  a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, levels + 1)]
        text += "zz:\n" + "\n".join(rows) + "\n"
    elif kind == "alias_recursive":
        text += "zz: &r [*r]\n" if rng.random() < 0.5 else "zz: &r {k: *r}\n"
    elif kind == "duplicate":
        lines = text.splitlines(keepends=True)
        text += rng.choice([l for l in lines if l[:1].isalpha()])
    elif kind == "deep":
        n = rng.choice([50, 500, 5000, 50000])
        text += "zz: " + "[" * n + "]" * n + "\n"
    elif kind == "wide":
        text += "zz: [" + ", ".join("1" for _ in range(rng.choice([1000, 30000, 300000]))) + "]\n"
    elif kind == "markup_name" and not goals:
        text = text.replace("\nname: ", f"\nname: {json.dumps(''.join(rng.sample(MARKUP, 3))[:80])}\n#")
    elif kind == "huge_scalar":
        text += "zz: " + "9" * rng.choice([10, 5000, 500000]) + "\n"
    elif kind == "tags":
        text += rng.choice(["zz: !!python/object/apply:os.system ['true']\n", "zz: !!binary AAAA\n",
                            "zz: !!timestamp 2020-01-01\n", "zz: !custom x\n", "zz: !!set {a, b}\n"])
    elif kind == "merge":
        text += "base: &b {fee: 0.5}\nrisk2:\n  <<: *b\n"
    elif kind == "binary":
        text = text[: rng.randint(0, len(text))] + rng.choice(["\x00", "\udcff", "\x1b[2J", "\ufeff"]) + text
    elif kind == "number":
        field = "capital" if not goals else "min_trades"
        value = rng.choice(["1e-320", "1e309", "-0", "nan", ".inf", "0x10", "1_000", "1e308", "5e-324", "10000"])
        text = "\n".join(f"{field}: {value}" if l.startswith(f"{field}:") else l for l in text.splitlines()) + "\n"
    elif kind == "truncate":
        text = text[: rng.randint(0, len(text))]
    path = folder / ("goals.yaml" if goals else "strategy.yaml")
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    if goals:
        data = folder / "c.csv"
        data.write_text("".join(CANDLES[:300]))
        return f"yaml:goals:{kind}", ["run", "--replay", str(data), "--goals", str(path), "--speed", "max"]
    return f"yaml:strategy:{kind}", ["check", "--config", str(path)]


def special_case(rng: random.Random, folder: Path) -> tuple[str, list[str]]:
    kind = rng.choice(["dev_zero", "dev_urandom", "fifo", "directory", "missing", "dev_null", "huge_sparse", "symlink_loop"])
    path = {"dev_zero": "/dev/zero", "dev_urandom": "/dev/urandom", "dev_null": "/dev/null",
            "directory": str(folder), "missing": str(folder / "nope.yaml")}.get(kind)
    if kind == "fifo":
        path = str(folder / "f.csv")
        os.mkfifo(path)
    elif kind == "huge_sparse":
        path = str(folder / "big.csv")
        with open(path, "w") as handle:
            handle.write("timestamp,open,high,low,close,volume\n")
            handle.truncate(200_000_000)
    elif kind == "symlink_loop":
        path = str(folder / "loop.yaml")
        os.symlink(path, path)
    where = rng.choice(["--config", "--data"])
    argv = ["check", "--config", path] if where == "--config" else \
        ["backtest", "--config", str(ROOT / "config/strategy.yaml"), "--data", path, "--json"]
    return f"special:{where}:{kind}", argv


def csv_case(rng: random.Random, folder: Path) -> tuple[str, list[str]]:
    kind = rng.choice(["scale", "rows", "gap", "future", "shuffle", "junk_cell", "long_header", "long_line",
                       "columns", "epoch", "negative", "flat", "gzip"])
    header, rows = CANDLES[0], CANDLES[1:rng.randint(60, 1500)]
    if kind == "scale":
        factor = 10.0 ** rng.choice([-320, -300, -14, -12, -6, 0, 6, 11, 13, 100, 300, 308])
        out = []
        for r in rows:
            t, *v = r.strip().split(",")
            out.append(",".join([t] + [repr(float(x) * factor) for x in v[:4]] + v[4:]) + "\n")
        rows = out
    elif kind == "rows":
        rows = rows[: rng.choice([0, 1, 2, 3, 50, 51, 52])]
    elif kind == "gap":
        years = rng.choice([1, 9, 11, 40])
        rows = [r.replace("2017-", str(2017 - years) + "-", 1) if i < len(rows) // 2 else r for i, r in enumerate(rows)]
    elif kind == "future":
        rows = [r.replace("2017-", rng.choice(["2099-", "2147-", "2199-"]), 1) for r in rows]
    elif kind == "shuffle":
        rows = rows[:]
        rng.shuffle(rows)
    elif kind == "junk_cell":
        i = rng.randrange(len(rows))
        cells = rows[i].strip().split(",")
        cells[rng.randrange(len(cells))] = rng.choice(["nan", "inf", "-inf", "", "1e999", "abc", "0", "-1", "[/]", "9" * 400])
        rows[i] = ",".join(cells) + "\n"
    elif kind == "long_header":
        header = "timestamp" + ",open" * rng.choice([10, 20_000, 2_000_000]) + "\n"
    elif kind == "long_line":
        rows = rows[:]
        rows[rng.randrange(len(rows))] = "x" * rng.choice([1000, 100_000, 10_000_000]) + "\n"
    elif kind == "columns":
        header = rng.choice(["open,high,low,close\n", "timestamp,timestamp,open,high,low,close\n", "\n", ",,,,,\n"])
    elif kind == "epoch":
        import pandas as pd
        rows = [f"{int(pd.Timestamp(r.split(',')[0]).timestamp() * rng.choice([1, 1000, 1e6]))},"
                + r.split(",", 1)[1] for r in rows]
    elif kind == "negative":
        rows = [r.replace(",", ",-", 1) for r in rows]
    elif kind == "flat":
        t0 = [r.split(",")[0] for r in rows]
        rows = [f"{t},100,100,100,100,0\n" for t in t0]
    path = folder / ("c.csv.gz" if kind == "gzip" else "c.csv")
    if kind == "gzip":
        import gzip
        with gzip.open(path, "wb") as handle:
            handle.write(header.encode())
            handle.write(b"\n" * rng.choice([10, 10_000_000]))
    else:
        with open(path, "w") as handle:
            handle.write(header)
            handle.writelines(rows)
    if rng.random() < 0.5:
        return f"csv:backtest:{kind}", ["backtest", "--config", str(ROOT / "config/strategy.yaml"), "--data", str(path), "--json"]
    return f"csv:replay:{kind}", ["run", "--replay", str(path), "--speed", "max"]


def args_case(rng: random.Random, folder: Path) -> tuple[str, list[str]]:
    data = folder / "c.csv"
    data.write_text("".join(CANDLES[:200]))
    weird = rng.choice(["nan", "-1", "1e-300", "1e300", "inf", "", "0", "[/]", "--", "-", "\x1b[31m", "%", "max",
                        "1000", "9" * 400, "$x$", "--help"])
    argv = rng.choice([
        ["run", "--replay", str(data), "--speed", weird],
        ["run", "--replay", str(data), "--settle", weird],
        ["backtest", "--config", weird, "--data", str(data)],
        ["backtest", "--data", weird],
        ["halt", "--reason", weird],
        ["status", "--json", weird],
        ["data", "check", weird],
        ["report", "--id", weird],
        [weird],
        ["check", "--config", str(ROOT / "config/strategy.yaml"), weird],
    ])
    return f"args:{argv[0]}:{argv[-2] if len(argv) > 1 else ''}", argv


GENERATORS = (yaml_case, special_case, csv_case, args_case)


# -- running one case --------------------------------------------------------------------------------


def run_case(argv: list[str], folder: Path, timeout: float, memory_mb: int) -> dict:
    out, err = folder / "stdout", folder / "stderr"
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: caps, fresh data dir, then the CLI as a user runs it
        try:
            resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
            os.environ["TRADER_DATA_DIR"] = str(folder / "data")
            fd_out = os.open(out, os.O_WRONLY | os.O_CREAT)
            fd_err = os.open(err, os.O_WRONLY | os.O_CREAT)
            os.dup2(fd_out, 1)
            os.dup2(fd_err, 2)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            from trader.cli import main
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse
                code = exc.code if isinstance(exc.code, int) else 2
            except BaseException:
                import traceback
                traceback.print_exc()
                code = 99
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code or 0)
        finally:
            os._exit(98)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - started > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            status = None
            break
        time.sleep(0.005)
    seconds = time.monotonic() - started
    text_out = out.read_text(errors="replace") if out.exists() else ""
    text_err = err.read_text(errors="replace") if err.exists() else ""
    result = {"seconds": round(seconds, 3), "stderr": text_err[-300:]}
    if status is None:
        result["outcome"] = "hang"
    elif os.WIFSIGNALED(status):
        result["outcome"] = f"signal {os.WTERMSIG(status)}"
    else:
        code = os.WEXITSTATUS(status)
        result["code"] = code
        if "Traceback (most recent call last)" in text_out + text_err:
            result["outcome"] = "traceback"
        elif code == 0 and _absurd(text_out):
            result["outcome"] = "absurd metrics"
        else:
            result["outcome"] = "ok"
    return result


def _absurd(stdout: str) -> bool:
    """Exit 0 with a JSON result holding a non-finite or absurd figure."""
    for line in stdout.strip().splitlines()[-1:]:
        try:
            data = json.loads(line, parse_constant=lambda c: float("nan"))
        except ValueError:
            return False
        if not isinstance(data, dict):
            return False
        for key, value in data.items():
            if isinstance(value, float) and not math.isfinite(value):
                return True
            if key == "total_return" and isinstance(value, float) and abs(value) > MAX_ABS_RETURN:
                return True
    return False


def preload() -> None:
    """Import and warm what the commands load lazily, once, before the forks."""
    import trader.backtest.run  # noqa: F401
    import trader.cli  # noqa: F401
    import trader.cli_daemon  # noqa: F401
    import trader.daemon  # noqa: F401
    import trader.ledger  # noqa: F401
    from trader.config import load_strategy_config
    from trader.goals import load_goals

    from trader.backtest import run_backtest
    from trader.ohlcv import load_ohlcv

    config = load_strategy_config(ROOT / "config/strategy.yaml")  # ccxt's exchange list
    load_goals(ROOT / "config/goals.yaml")  # apscheduler
    # numba's kernel compiled here: LLVM cannot map its code memory in a capped child
    run_backtest(load_ohlcv(ROOT / "tests/data/btcusd-1h.csv", config.timeframe).iloc[:300], config)


def fuzz(cases: int, seed: int, timeout: float, memory_mb: int, workdir: Path, progress=None) -> dict:
    rng = random.Random(seed)
    results = []
    for i in range(cases):
        folder = workdir / f"case{i}"
        folder.mkdir(parents=True)
        name, argv = GENERATORS[i % len(GENERATORS)](rng, folder)
        outcome = run_case(argv, folder, timeout, memory_mb)
        results.append({"case": i, "name": name, **outcome})
        for big in folder.glob("*"):  # sparse and large inputs do not pile up
            if big.is_file() and big.stat().st_size > 1_000_000:
                big.unlink()
        if progress:
            progress(i + 1, results[-1])
    counts = Counter(r["outcome"] for r in results)
    return {"cases": cases, "seed": seed, "outcomes": dict(counts),
            "refused_exit_2": sum(r.get("code") == 2 for r in results),
            "exit_0": sum(r.get("code") == 0 for r in results),
            "max_seconds": max(r["seconds"] for r in results),
            "failures": [r for r in results if r["outcome"] != "ok"],
            "by_family": dict(Counter(r["name"].split(":")[0] for r in results))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--memory-mb", type=int, default=2500)  # the forked parent holds ~1 GB of mappings
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    preload()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fuzz-hostile-") as tmp:
        def progress(n, last):
            if last["outcome"] != "ok" or n % 200 == 0:
                print(f"{n}/{args.cases} {last['name']}: {last['outcome']}", file=sys.stderr, flush=True)
        summary = fuzz(args.cases, args.seed, args.timeout, args.memory_mb, Path(tmp), progress)
    summary["wall_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps({k: v for k, v in summary.items() if k != "failures"}, indent=2))
    for failure in summary["failures"][:20]:
        print(json.dumps(failure), file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0 if not summary["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())

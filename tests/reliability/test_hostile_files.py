"""Hostile files where a strategy or goals file is expected (issue 12, items 1, 2 and 10): a
YAML alias bomb, special files, a huge file, a key written twice, values that are nonsense.
Each is refused at once, through the real CLI, with exit 2 and one line naming the file; a
running daemon records the bad edit and keeps ticking."""

from __future__ import annotations

import os
import time

import pytest

from trader.config import load_strategy_config
from trader.errors import ConfigError
from trader.goals import load_goals

from . import capped
from . import harness as H
from . import mutations as M


def alias_bomb(levels: int = 30) -> str:
    """Each level refers to the one below twice: 2^levels values once expanded."""
    rows = ["  a0: &a0 {k: 1}"] + [f"  a{i}: &a{i} {{k0: *a{i - 1}, k1: *a{i - 1}}}" for i in range(1, levels + 1)]
    return "zz_bomb:\n" + "\n".join(rows) + "\n"


@pytest.mark.parametrize("kind", ["strategy", pytest.param("goals", marks=pytest.mark.slow)])
def test_an_alias_bomb_is_refused_at_once(kind, tmp_path):
    good = (M.STRATEGY_FILE if kind == "strategy" else M.GOALS_FILE).read_text()
    path = tmp_path / f"{kind}.yaml"
    path.write_text(good + "\n" + alias_bomb())
    args = ["check", "--config", str(path)] if kind == "strategy" else \
        ["run", "--replay", str(H.ROOT / "tests/data/btcusd-1h.csv"), "--config", str(M.STRATEGY_FILE),
         "--goals", str(path)]
    started = time.monotonic()
    done = capped.run(args, H.clean_env(TRADER_DATA_DIR=str(tmp_path / "data")), timeout=30)
    assert not done.hung and not done.traceback, done.stderr[-2000:]
    assert done.returncode == 2 and f"error: {path}: " in done.stderr and "aliases" in done.stderr
    assert time.monotonic() - started < 15


def test_a_few_aliases_still_work(tmp_path):
    path = tmp_path / "strategy.yaml"
    text = M.STRATEGY_FILE.read_text().replace("fee: 0.001", "fee: &cost 0.001").replace("slippage: 0.0005",
                                                                                          "slippage: *cost")
    assert "*cost" in text
    path.write_text(text)
    assert load_strategy_config(path).risk.slippage == 0.001


@pytest.mark.parametrize("special", ["/dev/zero", "fifo", *(pytest.param(s, marks=pytest.mark.slow)
                                                             for s in ("/dev/urandom", "directory"))])
def test_a_special_file_is_refused_at_once(special, tmp_path):
    path = special
    if special == "fifo":
        path = str(tmp_path / "strategy.yaml")
        os.mkfifo(path)  # nobody ever writes: opening it for reading would block forever
    elif special == "directory":
        path = str(tmp_path)
    done = capped.run(["check", "--config", path], H.clean_env(), timeout=20)
    assert not done.hung and not done.traceback, done.stderr[-2000:]
    assert done.returncode == 2 and done.stderr.startswith(f"error: {path}: ")
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_huge_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "strategy.yaml"
    with path.open("w") as handle:
        handle.write(M.STRATEGY_FILE.read_text())
        handle.truncate(100_000_000)  # a 100 MB sparse tail: cheap to make, slow to parse
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"100,000,000 bytes; expected a YAML file of at most"):
        load_strategy_config(path)
    assert time.monotonic() - started < 1


def test_a_key_written_twice_is_refused_naming_both_lines(tmp_path):
    path = tmp_path / "strategy.yaml"
    text = M.STRATEGY_FILE.read_text()
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row.startswith("capital:"))
    path.write_text(text + "capital: 20000\n")
    with pytest.raises(ConfigError) as caught:
        load_strategy_config(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and "capital" in message and f"first on line {line}" in message


def test_a_nested_key_written_twice_is_refused(tmp_path):
    path = tmp_path / "goals.yaml"
    path.write_text(M.GOALS_FILE.read_text().replace("  lookback_days: 90", "  lookback_days: 90\n  lookback_days: 30"))
    with pytest.raises(ConfigError, match=r"review\.lookback_days: written twice"):
        load_goals(path)


def test_a_capital_too_small_to_trade_is_refused(tmp_path):
    path = tmp_path / "strategy.yaml"
    path.write_text(M.STRATEGY_FILE.read_text().replace("capital: 10000", "capital: 1e-320"))
    with pytest.raises(ConfigError, match="capital"):
        load_strategy_config(path)


def test_a_cron_that_never_fires_is_refused(tmp_path):
    path = tmp_path / "goals.yaml"
    path.write_text(M.GOALS_FILE.read_text().replace('cron: "0 6 * * mon"', 'cron: "0 6 31 2 *"'))
    with pytest.raises(ConfigError, match=r"review\.cron: .*never fires"):
        load_goals(path)


def test_a_running_daemon_records_a_swapped_in_bomb_and_keeps_ticking(btc, tmp_path):
    import threading

    from tests.trader.test_service import events, make_service, now_candles
    from trader.ledger import store
    from trader.localexchange import LocalExchange

    strategy = tmp_path / "strategy.yaml"
    strategy.write_text(M.STRATEGY_FILE.read_text().replace("exchange: coinbase", "exchange: binance")
                        .replace("symbol: BTC/USD", "symbol: BTC/USDT"))
    with LocalExchange(now_candles(btc, 700), symbol="BTC/USDT", balances={"USDT": 10_000.0}) as exchange:
        service = make_service(exchange, strategy, tmp_path)
        version = service.config.version
        strategy.write_text(strategy.read_text() + alias_bomb())
        ticked = threading.Thread(target=service.tick, daemon=True)  # the old code never came back
        ticked.start()
        ticked.join(30)
        assert not ticked.is_alive()
        (rejected,) = events(service, "config_rejected")
        assert str(strategy) in rejected and "aliases" in rejected
        assert service.config.version == version
        with service.factory() as s:  # the tick itself went on with the running version
            assert len(store.equity_of(s, "main")) == 1


@pytest.mark.parametrize("tail", ["zz: &r {k: *r}\n", "zz: [" + ", ".join(["1"] * 300_000) + "]\n"],
                         ids=["recursive_mapping", "300k_scalars"])
def test_self_referencing_or_huge_yaml_is_refused_quickly(tail, tmp_path):
    # found by benchmarks/fuzz_hostile.py: a MemoryError traceback, and minutes of composing
    path = tmp_path / "strategy.yaml"
    path.write_text(M.STRATEGY_FILE.read_text() + tail)
    started = time.monotonic()
    with pytest.raises(ConfigError, match="expected a small settings file"):
        load_strategy_config(path)
    assert time.monotonic() - started < 5

"""`trader init`: the handler called directly, through a local parser, into tmp_path."""

from __future__ import annotations

import argparse
import shutil

import pytest

from strategies.ma_cross import MaCrossParams
from trader.config import load_strategy_config
from trader.errors import ConfigError
from trader.goals import load_goals
from trader.onboarding import add_command, run_init
from trader.scaffold import tunable_bounds

from ..conftest import BTC_1H, ROOT, SHIPPED_YAML, STRATEGY_YAML

GOALS_YAML = ROOT / "config" / "goals.yaml"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="trader")
    add_command(parser.add_subparsers())
    return parser.parse_args(["init", *argv])


@pytest.fixture
def files(tmp_path):
    return tmp_path / "config" / "strategy.yaml", tmp_path / "config" / "goals.yaml"


@pytest.fixture
def init(tmp_path, files, capsys):
    """Run `trader init` with the config paths in tmp_path; returns (code, stdout, stderr)."""

    def run(*argv: str, environ: dict | None = None, tty: bool = False):
        strategy, goals = files
        args = parse("--config", str(strategy), "--goals", str(goals), *argv)
        env = {"TRADER_DATA_DIR": str(tmp_path / "data")} if environ is None else environ
        code = run_init(args, env, tty)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_scripted_flags_write_valid_commented_files(init, files):
    code, out, err = init(
        "--yes", "--exchange", "kraken", "--symbol", "eth/usd", "--timeframe", "4h", "--strategy", "donchian",
        "--stake", "50%", "--stop-loss", "0.08", "--take-profit", "none", "--capital", "2,500",
        "--monthly-return", "2%", "--min-sharpe", "1", "--max-drawdown", "0.2", "--name", "my: bot #1")
    assert code == 0, out + err
    strategy_path, goals_path = files
    config = load_strategy_config(strategy_path)
    assert (config.name, config.exchange, config.symbol, config.timeframe, config.strategy) == (
        "my: bot #1", "kraken", "ETH/USD", "4h", "donchian")
    assert config.capital == 2500
    assert (config.risk.stake_fraction, config.risk.stop_loss, config.risk.take_profit) == (0.5, 0.08, None)
    assert config.params.model_dump() == {"entry": 20, "exit": 10}  # the library's defaults
    assert set(config.tunable) == {"entry", "exit", "stop_loss"}
    for key, bounds in config.tunable.items():
        assert bounds.contains(config.value_of(key))
    goals = load_goals(goals_path)
    assert goals.success == {"monthly_return": 0.02, "sharpe": 1.0, "max_drawdown": 0.2}
    assert goals.max_drawdown_limit == pytest.approx(0.3)  # max drawdown + 10 points
    strategy_text, goals_text = strategy_path.read_text(), goals_path.read_text()
    assert "# Which strategy from the library" in strategy_text
    assert "exit: 10   # bars in the exit low" in strategy_text  # parameter descriptions as comments
    assert "# Your Well-Defined Goal" in goals_text and "at most 20%" in goals_text
    assert f"wrote {strategy_path}" in out and f"wrote {goals_path}" in out
    assert "warning:" not in out


def test_defaults_match_the_shipped_examples(init, files):
    code, out, _ = init("--yes")
    assert code == 0
    config = load_strategy_config(files[0])
    example = load_strategy_config(SHIPPED_YAML)
    for field in ("exchange", "symbol", "timeframe", "capital", "strategy", "params"):
        assert getattr(config, field) == getattr(example, field)
    assert config.risk == example.risk
    assert load_goals(files[1]) == load_goals(GOALS_YAML)
    assert "[ok] database sqlite:///" in out and "[ok] exchange coinbase" in out


def test_interactive_answers_with_a_reprompt(init, files, monkeypatch):
    answers = {
        "Exchange": ["binanse", "binance"], "Market": [""], "timeframe": ["7m", "15m"], "Strategy": ["rsi_reversion"],
        "Stake": ["150%", "0.5"], "Stop-loss": ["off"], "Take-profit": [""], "capital": ["1,000"],
        "monthly": ["2%"], "Sharpe": [""], "Maximum drawdown": ["20%"], "Failure": ["10%", ""],
    }
    prompts: list[str] = []

    def fake_input(prompt: str = "") -> str:
        prompts.append(prompt)
        for key, queue in answers.items():
            if key in prompt:
                return queue.pop(0)
        raise AssertionError(f"unexpected question: {prompt}")

    monkeypatch.setattr("builtins.input", fake_input)
    code, out, err = init(tty=True)
    assert code == 0, out + err
    assert all(not queue for queue in answers.values())  # every answer was used
    assert any("[coinbase]" in p for p in prompts) and any("[BTC/USDT]" in p for p in prompts)
    assert "did you mean: binance" in out and "try again" in out
    assert "binance has no '7m' candles" in out
    assert "150% is not above 0% and at most 100%" in out
    assert "must be at least the success maximum" in out
    config = load_strategy_config(files[0])
    assert (config.exchange, config.symbol, config.timeframe, config.strategy) == ("binance", "BTC/USDT", "15m", "rsi_reversion")
    assert (config.risk.stake_fraction, config.risk.stop_loss, config.capital) == (0.5, None, 1000)
    goals = load_goals(files[1])
    assert goals.success["max_drawdown"] == 0.2 and goals.max_drawdown_limit == pytest.approx(0.3)


def test_without_a_terminal_it_needs_yes(init, files):
    code, out, err = init()
    assert code == 2
    assert "--yes" in err and "not a terminal" in err
    assert not files[0].exists() and not files[1].exists()


def test_existing_files_are_kept_unless_forced(init, files):
    strategy_path, goals_path = files
    strategy_path.parent.mkdir(parents=True)
    shutil.copy(STRATEGY_YAML, strategy_path)
    shutil.copy(GOALS_YAML, goals_path)
    before = strategy_path.read_text(), goals_path.read_text()

    code, out, _ = init("--yes", "--exchange", "kraken", "--monthly-return", "5%")
    assert code == 0
    assert (strategy_path.read_text(), goals_path.read_text()) == before
    assert f"kept {strategy_path}" in out and f"kept {goals_path}" in out
    assert "--exchange ignored" in out and "--monthly-return ignored" in out

    code, out, _ = init("--yes", "--exchange", "kraken", "--monthly-return", "5%", "--force")
    assert code == 0
    assert load_strategy_config(strategy_path).exchange == "kraken"
    assert load_goals(goals_path).success["monthly_return"] == 0.05
    assert "written by `trader init`" in strategy_path.read_text()


def test_only_the_missing_file_is_written(init, files):
    strategy_path, goals_path = files
    strategy_path.parent.mkdir(parents=True)
    shutil.copy(STRATEGY_YAML, strategy_path)
    before = strategy_path.read_text()
    code, out, _ = init("--yes", "--capital", "5")
    assert code == 0
    assert strategy_path.read_text() == before and "--capital ignored" in out
    assert load_goals(goals_path).success["sharpe"] == 1.0


def test_your_own_invalid_file_shows_what_is_wrong(init, files):
    strategy_path, goals_path = files
    strategy_path.parent.mkdir(parents=True)
    strategy_path.write_text(STRATEGY_YAML.read_text().replace("fast: 20", "fast: 80"))
    with pytest.raises(ConfigError) as expected:
        load_strategy_config(strategy_path)
    code, out, err = init("--yes")
    assert code == 2
    assert str(expected.value) in err
    assert "fast (80) must be smaller than slow (50)" in err and "nothing was written" in err
    assert not goals_path.exists()


def test_bad_flag_and_bad_data_write_nothing(init, files, tmp_path):
    code, _, err = init("--yes", "--timeframe", "4h")  # coinbase has no 4h candles
    assert code == 2 and "--timeframe: coinbase has no '4h' candles" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open\n")
    code, _, err = init("--yes", "--data", str(bad))
    assert code == 2 and str(bad) in err
    assert not files[0].exists() and not files[1].exists()


def test_unrealistic_goals_are_explained(init):
    code, out, _ = init("--yes", "--monthly-return", "15%", "--capital", "50", "--min-sharpe", "4", "--stake", "95%",
                        "--max-drawdown", "3%", "--failure-drawdown", "0.3", "--data", str(BTC_1H))
    assert code == 0
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    text = "\n".join(warnings)
    assert "15% monthly target compounds to 435% a year" in text
    assert "with 50 USD and a typical 10 USD minimum order, fees of 0.1% per fill" in text
    assert "Sharpe ratio of 4" in text
    assert "drawdown under 3%" in text
    # the quick backtest: the example strategy fell 20.99% on this data, more than the 3% target
    assert "fell 21.0% from a peak, more than your 3% maximum drawdown" in text
    assert "max drawdown" in out and "20.99%" in out and "<= 3%" in out
    assert len(warnings) == 5


def test_a_tiny_position_is_below_the_minimum_order(init):
    code, out, _ = init("--yes", "--capital", "200", "--stake", "0.04", "--max-drawdown", "0.08",
                        "--data", str(BTC_1H))
    assert code == 0
    assert "a position of 8 USD (4% of 200) is below the typical 10 USD minimum order" in out
    assert "kill switch would have halted it" not in out


def test_keys_are_reported_never_shown(init, tmp_path):
    env = {
        "TRADER_DATA_DIR": str(tmp_path / "data"),
        "EXCHANGE_API_KEY": "AKIA-very-secret-key-1",
        "EXCHANGE_API_SECRET": "exchange-secret-value-2",
        "ANTHROPIC_API_KEY": "sk-ant-secret-value-3",
        "TRADER_WEBHOOK_URL": "",
    }
    code, out, err = init("--yes", environ=env)
    assert code == 0
    assert "[ok] EXCHANGE_API_KEY set" in out and "[ok] EXCHANGE_API_SECRET set" in out
    assert "[ok] ANTHROPIC_API_KEY set" in out and "TRADER_WEBHOOK_URL not set" in out
    for value in ("AKIA-very-secret-key-1", "exchange-secret-value-2", "sk-ant-secret-value-3"):
        assert value not in out + err


def test_environment_problems_are_listed_and_exit_1(init, tmp_path, files):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    env = {
        "TRADER_DATA_DIR": str(blocker / "data"),  # under a file: cannot be created
        "DATABASE_URL": "postgresql://bot:hunter2@127.0.0.1:1/trader",  # nobody listens on port 1
        "EXCHANGE_API_KEY": "only-the-key-is-set",
    }
    code, out, err = init("--yes", environ=env)
    assert code == 1
    assert "[!!] data directory" in out and "not writable" in out
    assert "[!!] database postgresql+psycopg://bot:***@127.0.0.1:1/trader: unreachable" in out
    assert "only one is set" in out
    assert "hunter2" not in out + err and "only-the-key-is-set" not in out + err
    assert files[0].exists() and files[1].exists()  # the files do not depend on the environment


def test_tunable_bounds_widen_around_the_chosen_values():
    import strategies

    bounds = tunable_bounds(strategies.get("ma_cross"), MaCrossParams(fast=3, slow=300),
                            {"stop_loss": 0.3, "take_profit": None})
    assert bounds == {"fast": (3, 50, 1), "slow": (20, 300, 5), "stop_loss": (0.12, 0.5, 0.01)}


def test_a_write_failure_writes_neither_file(init, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    goals = tmp_path / "goals.yaml"
    code, _, err = init("--yes", "--config", str(blocker / "strategy.yaml"), "--goals", str(goals))
    assert code == 2 and "cannot write" in err
    assert not goals.exists() and not list(tmp_path.glob(".*.tmp"))

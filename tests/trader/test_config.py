"""The strategy file: loaded into frozen models; every kind of bad file gets one clear message."""

from __future__ import annotations

import pytest

from trader.config import load_strategy_config
from trader.errors import ConfigError

from ..conftest import SHIPPED_YAML, STRATEGY_YAML

GOOD = STRATEGY_YAML.read_text()


def write(tmp_path, text, name="strategy.yaml"):
    path = tmp_path / name
    path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
    return path


def error_for(tmp_path, text) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_strategy_config(path)
    message = str(info.value)
    assert str(path) in message  # always names the file
    return message


def test_the_shipped_file_loads():
    config = load_strategy_config(SHIPPED_YAML)
    assert config.strategy == "ma_cross"
    assert config.params.fast == 20 and config.risk.stop_loss == 0.05
    assert set(config.tunable) == {"fast", "slow", "stop_loss", "stake_fraction"} and config.risk.stake_fraction == 0.5


def test_models_are_frozen(config):
    with pytest.raises(Exception):
        config.capital = 5
    with pytest.raises(Exception):
        config.params.fast = 3


def test_version_is_a_content_hash(tmp_path, config):
    # comments and formatting do not change the version; a value does
    reformatted = write(tmp_path, "# another comment\n" + GOOD.replace("fast: 20", "fast:    20"))
    assert load_strategy_config(reformatted).version == config.version
    changed = write(tmp_path, GOOD.replace("fast: 20", "fast: 21"), "b.yaml")
    assert load_strategy_config(changed).version != config.version
    assert len(config.version) == 12


@pytest.mark.parametrize(
    "edit, expected",
    [
        (("fast: 20", "fast: [20"), r"line \d+, column \d+: YAML syntax error"),
        (("capital: 10000", "capital: 10000\nleverage: 3"), r"line \d+, leverage: unknown key; expected one of: name, exchange"),
        (("  kind: sma", "  kind: sma\n  fastt: 3"), r"params.fastt: unknown key; expected one of: fast, slow, kind"),
        (("  fee: 0.001", "  fee: 0.001\n  leverage: 2"), r"risk.leverage: unknown key; expected one of: stake_fraction"),
        (("fast: 20", "fast: twenty"), r"line 22, params.fast: Input should be a valid integer.*\(got 'twenty'\)"),
        (("fast: 20", "fast: 45"), r"params.fast: 45 is outside its tunable bounds \[5, 40\] \(tunable.fast\)"),
        (("fast: 20", "fast: 60"), r"params: fast \(60\) must be smaller than slow \(50\)"),
        (("strategy: ma_cross", "strategy: macd"), r"strategy: unknown strategy 'macd'; expected one of: donchian, ma_cross, rsi_reversion"),
        (("timeframe: 1h", "timeframe: 1 hour"), r"timeframe: unknown timeframe '1 hour'"),
        (("timeframe: 1h", "timeframe: 4h"), r"timeframe: coinbase has no '4h' candles; expected one of: 1m, 5m"),
        (("exchange: coinbase", "exchange: coinbasee"), r"exchange: unknown exchange 'coinbasee'"),
        (("stake_fraction: 0.95", "stake_fraction: -0.5"), r"risk.stake_fraction: Input should be greater than 0 \(got -0.5\)"),
        (("stake_fraction: 0.95", "stake_fraction: 1.5"), r"risk.stake_fraction: Input should be less than or equal to 1"),
        (("stop_loss: 0.05 ", "stop_loss: .nan "), r"risk.stop_loss"),
        (("capital: 10000", "capital: .inf"), r"capital: Input should be a finite number"),
        (("capital: 10000", "capital: 1e400"), r"capital: Input should be a finite number"),
        (("symbol: BTC/USD", "symbol: BTCUSD"), r"symbol: symbol 'BTCUSD' is not a market: expected BASE/QUOTE"),
        (("name: btc-trend\n", ""), r"name: required but missing"),
        (("  fast:      {min: 5,", "  fast:      {min: 50,"), r"tunable.fast: min \(50.0\) must not exceed max \(40.0\)"),
        (("  fast:      {min: 5,", "  macd:      {min: 5,"), r"tunable.macd: not a variable of ma_cross; expected one of: fast, slow, kind, stake_fraction"),
    ],
)
def test_bad_files_name_the_field_and_what_is_expected(tmp_path, edit, expected):
    old, new = edit
    assert old in GOOD, f"test edit {old!r} does not apply"
    message = error_for(tmp_path, GOOD.replace(old, new, 1))
    import re

    assert re.search(expected, message), message


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("- a\n- b\n", "expected a mapping of settings"),
        ("just words", "expected a mapping of settings"),
        (b"\x00\x01\x02binary", "binary data"),
        (b"\xff\xfe\xfa", "cannot read the file as UTF-8"),
    ],
)
def test_files_that_are_not_settings_at_all(tmp_path, text, expected):
    assert expected in error_for(tmp_path, text)


def test_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: file not found"):
        load_strategy_config(tmp_path / "nope.yaml")


def test_several_problems_are_reported_together(tmp_path):
    text = GOOD.replace("fast: 20", "fast: twenty").replace("fee: 0.001", "fee: -1")
    message = error_for(tmp_path, text)
    assert "params.fast" in message and "risk.fee" in message


def test_with_value_changes_one_variable_and_validates(config):
    changed = config.with_value("stop_loss", 0.03)
    assert changed.risk.stop_loss == 0.03 and changed.params == config.params
    assert changed.version != config.version
    with pytest.raises(ConfigError, match="risk.stop_loss: 0.2 is outside its tunable bounds"):
        config.with_value("stop_loss", 0.2)
    with pytest.raises(ConfigError, match="tunable.leverage: not a variable of ma_cross"):
        config.with_value("leverage", 2)


@pytest.mark.parametrize("edit, expected", [
    (("stop_loss: 0.05 ", "stop_loss: yes "), "line 28, risk.stop_loss: expected a number between 0 and 1 or null, "
                                              "got a boolean"),
    (("stake_fraction: 0.95", "stake_fraction: yes"), "risk.stake_fraction: expected a number between 0 and 1, "
                                                       "got a boolean"),  # not taken as 1, silently
    (("capital: 10000", "capital: true"), "capital: expected a number between 1e-06 and 1e+12, got a boolean"),
    (("fast: 20", "fast: no"), "params.fast: expected a whole number between 2 and 1000, got a boolean"),
    (("  fast:      {min: 5,", "  fast:      {min: yes,"), "tunable.fast.min: expected a number, got a boolean"),
])
def test_a_boolean_where_a_number_is_expected_says_so(tmp_path, edit, expected):
    old, new = edit
    assert old in GOOD, f"test edit {old!r} does not apply"
    message = error_for(tmp_path, GOOD.replace(old, new, 1))
    assert expected in message and "(got True)" not in message and message.count("\n") == 1, message

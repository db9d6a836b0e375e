"""Hermes rewrites the user's strategy file: only the changed values move, everything the user
wrote around them (comments, quoting, key order, alignment) stays byte for byte."""

from __future__ import annotations

import difflib
from datetime import datetime

import pytest

from hermes.versions import HEADER, MAX_HEADER_LINES, rewrite
from tests.conftest import STRATEGY_YAML
from trader.config import StrategyConfig, parse_strategy_config
from trader.yamlfile import parse_yaml

WHEN = datetime(2024, 3, 4, 6, 0)


def load(text: str) -> StrategyConfig:
    return parse_strategy_config(parse_yaml(text, "<test>", "settings")[0], "<test>")


def changed_lines(before: str, after: str) -> list[str]:
    """The lines of `after` that differ from `before`, besides the header Hermes adds."""
    diff = difflib.ndiff(before.splitlines(keepends=True), after.splitlines(keepends=True))
    return [line[2:] for line in diff if line.startswith(("+ ", "- ")) and not line[2:].startswith(HEADER)]


QUOTED = STRATEGY_YAML.read_text().replace("name: btc-trend", "name: 'btc-trend'").replace(
    "symbol: BTC/USD", 'symbol: "BTC/USD"')


def test_a_promotion_changes_one_line_and_keeps_comments_quoting_and_layout() -> None:
    text = QUOTED
    current = load(text)
    new = current.with_value("fast", 25)
    out = rewrite(text, current, new, "promoted fast 20 -> 25", WHEN)
    assert load(out).version == new.version
    assert out.splitlines()[0] == f"{HEADER}2024-03-04 06:00Z: promoted fast 20 -> 25"
    assert changed_lines(text, out) == ["  fast: 20\n", "  fast: 25\n"]
    body = out.split("\n", 1)[1]
    assert body.replace("  fast: 25\n", "  fast: 20\n") == text  # every other byte as the user wrote it
    assert "# The strategy the daemon trades." in out  # full-line comment
    assert "name: 'btc-trend'" in out and 'symbol: "BTC/USD"' in out  # quoting
    assert "  fast:      {min: 5,    max: 40,   step: 1}\n" in out  # untouched alignment


def test_a_changed_value_keeps_its_inline_comment() -> None:
    text = STRATEGY_YAML.read_text()
    current = load(text)
    new = current.with_values({"stop_loss": 0.07, "take_profit": 0.12})
    out = rewrite(text, current, new, "rolled back", WHEN)
    assert load(out).version == new.version
    assert "  stop_loss: 0.07        # exit 5% below the entry price; null turns it off\n" in out
    assert "  take_profit: 0.12      # exit this fraction above the entry price; null turns it off\n" in out
    assert len(changed_lines(text, out)) == 4


def test_a_changed_quoted_string_keeps_its_quotes() -> None:
    text = QUOTED
    current = load(text)
    new = parse_strategy_config({**current.to_dict(), "name": "it's mine"}, "<test>")
    out = rewrite(text, current, new, "rolled back by hand", WHEN)
    assert load(out).version == new.version and "name: 'it''s mine'\n" in out


def test_a_key_the_file_left_to_its_default_is_added_and_comments_are_kept() -> None:
    text = STRATEGY_YAML.read_text().replace(
        "  take_profit: null      # exit this fraction above the entry price; null turns it off\n", "")
    current = load(text)
    new = current.with_value("take_profit", 0.1)
    out = rewrite(text, current, new, "promoted take_profit", WHEN)
    assert load(out).version == new.version
    comments = [line.strip() for line in text.splitlines() if line.lstrip().startswith("#")]
    assert comments == [line.strip() for line in out.splitlines()[1:] if line.lstrip().startswith("#")]
    assert "  stop_loss: 0.05        # exit 5% below the entry price; null turns it off\n" in out


def test_line_endings_of_a_windows_file_are_kept() -> None:
    text = STRATEGY_YAML.read_text().replace("\n", "\r\n")
    current = load(text)
    new = current.with_value("slow", 60)
    out = rewrite(text, current, new, "promoted slow", WHEN)
    assert load(out).version == new.version and "  slow: 60\r\n" in out
    assert out.count("\r\n") == text.count("\r\n")


def test_an_anchored_value_is_not_edited_behind_its_alias() -> None:
    text = STRATEGY_YAML.read_text().replace("  fast: 20\n", "  fast: &f 20\n").replace(
        "{min: 5,    max: 40,", "{min: *f,   max: 40,")
    current = load(text)
    new = current.with_value("fast", 30)
    out = rewrite(text, current, new, "promoted fast", WHEN)
    assert load(out).version == new.version and load(out).tunable["fast"].min == 20


def test_headers_are_newest_first_and_capped() -> None:
    text = STRATEGY_YAML.read_text()
    config = load(text)
    for step in range(MAX_HEADER_LINES + 3):
        new = config.with_value("slow", 60 + 5 * (step % 2))
        text = rewrite(text, config, new, f"step {step}", WHEN)
        config = load(text)
    headers = [line for line in text.splitlines() if line.startswith(HEADER)]
    assert len(headers) == MAX_HEADER_LINES and headers[0].endswith(f"step {MAX_HEADER_LINES + 2}")
    assert text.split("\n", MAX_HEADER_LINES)[-1] == STRATEGY_YAML.read_text().replace("  slow: 50\n", f"  slow: {config.params.slow}\n")


@pytest.mark.parametrize("layout", ["flow", "block"])
def test_any_layout_loads_to_the_new_version(layout: str) -> None:
    import yaml

    data = load(STRATEGY_YAML.read_text()).to_dict()
    text = yaml.safe_dump(data, default_flow_style=layout == "flow", sort_keys=False)
    current = load(text)
    new = current.with_values({"fast": 12, "stop_loss": None})
    assert load(rewrite(text, current, new, "promoted", WHEN)).version == new.version

"""User text is printed as text everywhere (issue 12, item 3): rich markup, matplotlib
mathtext, Slack and Discord markup and terminal escape sequences in a strategy's name or a
halt reason never crash a command, never become a link, a ping or formatting."""

from __future__ import annotations

import json

import pytest

from tests.trader.test_notify import hook, make  # noqa: F401  (fixtures: a real webhook server)

from . import capped
from . import harness as H
from . import mutations as M

MARKUP = "[/] [link=http://evil.example]click[/link] $x^$ <http://evil.example|x> <!channel> @everyone **b**"
NAME = "[/] [link=http://evil.example]click[/link] $x^$"  # a name has at most 80 characters


@pytest.fixture
def files(tmp_path):
    strategy = tmp_path / "strategy.yaml"
    strategy.write_text(M.STRATEGY_FILE.read_text().replace("\nname: ", f"\nname: {json.dumps(NAME)}\n#"))
    data = tmp_path / "short.csv"
    data.write_text("".join((H.ROOT / "tests/data/btcusd-1h.csv").read_text().splitlines(keepends=True)[:500]))
    return strategy, data


def test_markup_in_the_name_is_printed_as_text_in_a_terminal(files, tmp_path):
    strategy, data = files
    # FORCE_COLOR makes rich write for a terminal: where links would become escape codes
    env = H.clean_env(FORCE_COLOR="1", COLUMNS="400", TERM="xterm-256color")
    done = capped.run(["backtest", "--config", str(strategy), "--data", str(data), "--plot",
                       str(tmp_path / "chart.png")], env, timeout=60)
    assert done.returncode == 0 and not done.traceback, done.stderr[-2000:]
    assert "[link=http://evil.example]click[/link]" in done.stdout and "[/]" in done.stdout
    assert "\x1b]8;" not in done.stdout  # no OSC 8 hyperlink
    assert (tmp_path / "chart.png").stat().st_size > 10_000  # '$x^$' drawn as text, not parsed


@pytest.mark.slow
def test_markup_in_a_halt_reason_is_printed_as_text_by_status(tmp_path):
    from trader.ledger import open_ledger, sessions
    from trader.ledger.models import DaemonState

    with sessions(open_ledger(f"sqlite:///{tmp_path / 'trader.db'}")).begin() as s:  # a book that has run
        s.add(DaemonState(book="main", state="running", mode="paper"))
    env = H.clean_env(TRADER_DATA_DIR=str(tmp_path), FORCE_COLOR="1", COLUMNS="400")
    assert capped.run(["halt", "--reason", MARKUP], env).returncode == 0
    done = capped.run(["status"], env)
    assert done.returncode == 0 and not done.traceback, done.stderr[-2000:]
    assert "[link=http://evil.example]click[/link]" in done.stdout and "\x1b]8;" not in done.stdout


def test_escape_sequences_in_the_name_are_refused(tmp_path):
    path = tmp_path / "strategy.yaml"
    path.write_text(M.STRATEGY_FILE.read_text().replace("\nname: ", '\nname: "\\e]8;;http://evil\\a x"\n#'))
    done = capped.run(["check", "--config", str(path)], H.clean_env())
    assert done.returncode == 2 and f"error: {path}: " in done.stderr and "name" in done.stderr


def test_slack_gets_no_link_or_mention_from_user_text(hook, make):  # noqa: F811
    notifier = make(style="slack")
    notifier.notify("config_rejected", MARKUP)
    assert notifier.flush(5)
    (body,) = hook.bodies()
    assert "<http" not in body["text"] and "<!channel>" not in body["text"]
    assert "&lt;http://evil.example|x&gt;" in body["text"]


def test_discord_gets_no_link_ping_or_formatting_from_user_text(hook, make):  # noqa: F811
    notifier = make(style="discord")
    notifier.notify("config_rejected", MARKUP + " [click](http://evil.example)")
    assert notifier.flush(5)
    (body,) = hook.bodies()
    assert body["allowed_mentions"] == {"parse": []}
    content = body["content"]
    assert "[click](" not in content and "**b**" not in content and "@everyone" not in content
    assert content.replace("\\", "").replace("\u200b", "").endswith(MARKUP[-20:] + " [click](http://evil.example)")

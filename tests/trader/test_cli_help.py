"""The command line explains itself: every subcommand and option of `trader` and `hermes` has help text,
and both commands say their version."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from ..conftest import ROOT


def walk(parser: argparse.ArgumentParser, path: str = ""):
    """(command path, action) for every action of the parser and its subcommands."""
    for action in parser._actions:
        yield path, action
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{path} {name}".strip(), argparse.Action([name], name, help=helps.get(name))
                yield from walk(sub, f"{path} {name}".strip())


@pytest.mark.parametrize("command", ["trader", "hermes"])
def test_every_command_and_option_has_help(command):
    from hermes.cli import _parser as hermes_parser
    from trader.cli import _parser as trader_parser

    parser = {"trader": trader_parser, "hermes": hermes_parser}[command]()
    missing = [f"{command} {path}: {action.option_strings or action.dest}" for path, action in walk(parser)
               if not isinstance(action, argparse._SubParsersAction) and not action.help]
    assert missing == []


@pytest.mark.parametrize("command", ["trader.cli", "hermes.cli"])
def test_version(command):
    from importlib.metadata import version

    done = subprocess.run([sys.executable, "-m", command, "--version"], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{command.split('.')[0]} {version('hermes-trader')}"


def test_hermes_history_shows_whole_version_ids_in_a_narrow_terminal(tmp_path):
    """`hermes rollback VERSION` takes the ids `hermes history` shows: never cut to 'f67d…'."""
    import os

    from trader.config import load_strategy_config, parse_strategy_config
    from trader.ledger import open_ledger, sessions, store

    from ..conftest import STRATEGY_YAML

    config = load_strategy_config(STRATEGY_YAML)
    other = parse_strategy_config({**config.to_dict(), "params": {**config.to_dict()["params"], "fast": 12}}, "<x>")
    engine = open_ledger(f"sqlite:///{tmp_path / 'trader.db'}")
    with sessions(engine).begin() as s:
        store.ensure_version(s, config)
        store.ensure_version(s, other)
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "TRADER_"))}
    env.update(TRADER_DATA_DIR=str(tmp_path), COLUMNS="40")
    done = subprocess.run([sys.executable, "-m", "hermes.cli", "history"], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert config.version in done.stdout and other.version in done.stdout and config.version != other.version

"""The command line explains itself: every subcommand and option of `trader` has help text,
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


def test_every_trader_command_and_option_has_help():
    from trader.cli import _parser

    missing = [f"trader {path}: {action.option_strings or action.dest}" for path, action in walk(_parser())
               if not isinstance(action, argparse._SubParsersAction) and not action.help]
    assert missing == []


@pytest.mark.parametrize("command", ["trader.cli", "hermes.cli"])
def test_version(command):
    from importlib.metadata import version

    done = subprocess.run([sys.executable, "-m", command, "--version"], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{command.split('.')[0]} {version('hermes-trader')}"

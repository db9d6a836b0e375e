"""What the `trader` and `hermes` commands share: running the chosen handler with the
user's mistakes ending in one line and exit code 2, and reading a time given on the
command line."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Sequence

from .errors import InputError

if TYPE_CHECKING:
    from pathlib import Path


def dispatch(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Run the chosen command's handler; the user's mistakes end with a message and exit 2."""
    parser.add_argument("--version", action=_Version)
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a ledger found damaged by a read (its file is named by open_ledger's check)
        # the ledger's modules (sqlalchemy) only now: `--help` and cheap commands start fast
        from .ledger.damage import damage_message, is_damage, reason_of

        if not is_damage(exc):
            raise
        from .ledger import database_url

        print(f"error: {damage_message(database_url().split(':///', 1)[-1], reason_of(exc))}", file=sys.stderr)
        return 2


class _Version(argparse.Action):
    """argparse's `version` action, reading the installed version only when asked (reading
    package metadata costs every other command tens of milliseconds)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show program's version number and exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog} {_version()}")
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hermes-trader")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def parse_time(text: str, flag: str) -> datetime:
    """An ISO 8601 date or time from the command line; naive means UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{flag}: {text!r} is not a date; expected ISO 8601 like 2024-01-01 or 2024-01-01T12:00") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def output_path(text: str, flag: str, expected: str, suffixes: Sequence[str] = ()) -> tuple[Path, Path | None]:
    """A file the command will write, checked before any work is done: not a folder, no file
    among its parents, a suffix among `suffixes` (when given), a writable place. Returns the
    path and the first of its folders that is missing (the writer creates it, and says so)."""
    import os
    from pathlib import Path

    path = Path(text).expanduser()
    problem = None
    if text.endswith(("/", os.sep)) or path.is_dir():
        problem = "is a folder"
    elif suffixes and path.suffix.lower() not in suffixes:
        problem = f"has {f'the suffix {path.suffix}' if path.suffix else 'no suffix'}"
    if problem:
        raise InputError(f"{flag} {text}: {problem}; expected {expected}")
    missing, parent = None, path.absolute().parent
    while not parent.exists():
        missing, parent = parent, parent.parent
    if not parent.is_dir():
        raise InputError(f"{flag} {text}: {parent} is a file, not a folder; expected {expected} in a folder "
                         "(missing folders are created)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {text}: the folder {parent} cannot be written (permission denied)")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{flag} {text}: the file exists and cannot be written (permission denied)")
    return path, missing

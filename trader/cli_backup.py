"""`trader backup [--to FILE]`: a consistent copy of the SQLite ledger, safe while the daemon
runs (SQLite's online backup API); a PostgreSQL ledger is pointed to pg_dump and Railway's backups."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path


def add_command(sub) -> None:
    backup = sub.add_parser("backup", help="copy the ledger to a file, safely while the daemon runs "
                            "(SQLite; for PostgreSQL it says what to use)")
    backup.add_argument("--to", metavar="FILE", help="the copy's path (default: "
                        "$TRADER_DATA_DIR/backups/trader-TIME.db)")
    backup.set_defaults(handler=_backup)


def _backup(args: argparse.Namespace) -> int:
    from .ledger import data_dir, database_url
    from .ledger.damage import backup

    target = Path(args.to) if args.to else \
        data_dir() / "backups" / f"trader-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.db"
    done = backup(database_url(), target)
    print(f"ledger backed up to {done} ({done.stat().st_size:,} bytes, checked); restore: stop the daemon, "
          f"then copy it over {database_url().split(':///', 1)[-1]} (and remove that file's -wal and -shm)")
    return 0

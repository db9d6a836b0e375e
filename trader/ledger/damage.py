"""A damaged ledger, found and said plainly; and backups of a healthy one.

SQLite: `PRAGMA quick_check` when a ledger file is opened, and any "file is not a database" /
"database disk image is malformed" error afterwards, mean the file is damaged. The daemon then
keeps a copy of the damaged files aside (never deleting them), halts and says how to restore;
every command says so in one line and exits 2. A backup is SQLite's online backup (a consistent
copy while the daemon writes); a PostgreSQL ledger is backed up with its own tools.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from ..errors import InputError

# SQLite's primary result codes for a damaged file
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26
_WORDS = ("malformed", "not a database", "file is encrypted", "corrupt")


class LedgerDamaged(InputError):
    """The ledger file is damaged: nothing may be traded or written on it."""

    def __init__(self, path: str, reason: str, kept: Path | None = None):
        self.path, self.reason, self.kept = path, reason, kept
        super().__init__(damage_message(path, reason, kept))


def damage_message(path: str, reason: str, kept: Path | None = None) -> str:
    where = f"; a copy of the damaged files is kept in {kept}" if kept else ""
    return (f"the ledger {path} is damaged ({reason}){where}; nothing is traded on it. To restore: stop the "
            f"daemon, move {path} and its -wal and -shm files away, and copy your latest `trader backup` file "
            f"to {path} (or start without it: an empty ledger); then check the exchange for orders placed "
            "since that backup")


def is_damage(exc: BaseException) -> bool:
    """Whether a database error says the file itself is damaged (not locked, not full)."""
    orig = getattr(exc, "orig", exc)
    if not isinstance(orig, sqlite3.DatabaseError):
        return False
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return True
    return any(word in str(orig).lower() for word in _WORDS)


def reason_of(exc: BaseException) -> str:
    """The database's own words (sqlite's 'database or disk is full'), without the SQL."""
    return str(getattr(exc, "orig", None) or exc or exc.__class__.__name__).splitlines()[0][:200]


def sqlite_file(url) -> Path | None:
    """The file of a SQLite URL (str or sqlalchemy URL); None for memory or another database."""
    from sqlalchemy.engine import make_url

    url = make_url(url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def quick_check(path: Path) -> str | None:
    """None when the file reads as a whole SQLite database, else what is wrong. A missing or
    empty file is fine (a new ledger). Reads only: no journal mode is changed, nothing written."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        rows = [r[0] for r in db.execute("PRAGMA quick_check(5)").fetchall()]
    except sqlite3.OperationalError as exc:
        if is_damage(exc):
            return str(exc)
        return None  # locked or busy: not proof of damage; the next read says more
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        db.close()
    if rows == ["ok"]:
        return None
    return "; ".join(str(r) for r in rows)[:200]


def keep_aside(path: Path, now: datetime | None = None) -> Path | None:
    """Copy the damaged database and its -wal and -shm files into `damaged/` beside it (the
    originals stay where they are). The same damaged bytes are copied once, however often a
    restarting daemon finds them. None when nothing could be copied."""
    path = Path(path)
    now = now or datetime.now(timezone.utc)
    parts = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
    if not parts:
        return None
    digest = hashlib.sha256()
    try:
        for part in parts:
            with open(part, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        folder = path.parent / "damaged"
        folder.mkdir(exist_ok=True)
        tag = digest.hexdigest()[:10]
        for earlier in folder.glob(f"{path.name}-*-{tag}"):
            return earlier  # these very bytes were kept already
        target = folder / f"{path.name}-{now:%Y%m%dT%H%M%SZ}-{tag}"
        target.mkdir()
        for part in parts:
            shutil.copy2(part, target / part.name)
    except OSError:
        return None
    return target


def check_file(url, keep: bool = False) -> None:
    """Raise LedgerDamaged when the URL's SQLite file fails the quick check; with `keep`, a
    copy of the damaged files is kept aside first (the daemon's start)."""
    path = sqlite_file(url)
    if path is None:
        return
    problem = quick_check(path)
    if problem is not None:
        raise LedgerDamaged(str(path), problem, keep_aside(path) if keep else None)


# -- backups -----------------------------------------------------------------------------------


def backup(url, target: Path) -> Path:
    """A consistent copy of a SQLite ledger through SQLite's online backup API (safe while the
    daemon writes), checked after it is written. PostgreSQL: refused with what to use instead."""
    from sqlalchemy.engine import make_url

    path = sqlite_file(url)
    if path is None:
        backend = make_url(url).get_backend_name()
        if backend == "postgresql":
            raise InputError("the ledger is PostgreSQL (DATABASE_URL): back it up with `pg_dump --format=custom "
                             "\"$DATABASE_URL\" > trader.dump` (restore with pg_restore), or Railway's backups of "
                             "the PostgreSQL service (its Backups tab)")
        raise InputError(f"trader backup copies SQLite ledgers; this ledger is {backend}: use its own backup tools")
    if not path.is_file():
        raise InputError(f"{path}: no ledger to back up (expected the SQLite file the daemon writes; "
                         "set TRADER_DATA_DIR or DATABASE_URL)")
    check_file(url)
    target = Path(target)
    if target.exists() and target.resolve() == path.resolve():
        raise InputError(f"--to {target}: that is the ledger itself; expected another file")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.unlink(missing_ok=True)
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy, pages=256)  # in steps: the daemon's writes go on meanwhile
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            copy.close()
            source.close()
        problem = quick_check(partial)
        if problem is not None:
            raise InputError(f"{target}: the copy does not check ({problem}); the ledger was not backed up")
        partial.replace(target)
    except sqlite3.Error as exc:
        if is_damage(exc):
            raise LedgerDamaged(str(path), str(exc)) from None
        raise InputError(f"{path}: cannot be backed up now ({exc}); try again") from None
    except OSError as exc:
        raise InputError(f"--to {target}: cannot be written ({exc.strerror or exc}); expected a writable "
                         "file path") from None
    return target

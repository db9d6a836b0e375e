"""One daemon per book per database: a second daemon pointed at the same ledger for the same
strategy refuses to start, instead of both trading.

PostgreSQL: a session-level advisory lock held by a dedicated connection (the server frees it
when the process dies, however it dies). SQLite: an exclusive `flock` on a file beside the
database (the kernel frees it when the process dies).
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
import zlib
from pathlib import Path

from sqlalchemy import Engine, text

from ..errors import InputError


class BookLock:
    def __init__(self, release):
        self._release = release

    def release(self) -> None:
        if self._release is not None:
            self._release()
            self._release = None


def daemon_alive(engine: Engine, book: str) -> tuple[bool | None, str]:
    """Whether a daemon holds the book's lock now (so is alive, however long since its last
    tick), and who: (True, 'pid 12 on host'), (False, ''), or (None, '') where there is no lock."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            held = connection.execute(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = :key"), {"key": _pg_key(book)}).scalar()
        return bool(held), ""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return None, ""
    path = _sqlite_path(Path(engine.url.database), book)
    try:
        handle = open(path)
    except FileNotFoundError:
        return False, ""  # no daemon ever ran on this ledger
    with handle:
        try:  # a shared lock for an instant: refused while a daemon holds its exclusive one
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True, handle.read().strip()
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False, ""


def _pg_key(book: str) -> int:
    return zlib.crc32(f"trader-book:{book}".encode())  # stable across processes and hosts


def _sqlite_path(database: Path, book: str) -> Path:
    return database.with_name(f"{database.name}.{book}.lock")


def acquire(engine: Engine, book: str) -> BookLock:
    if engine.dialect.name == "postgresql":
        return _postgres(engine, book)
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        return _sqlite(Path(engine.url.database), book)
    return BookLock(None)  # other databases: no lock (documented)


def _refused(book: str, where: str, holder: str = "") -> InputError:
    return InputError(
        f"another daemon is already trading book {book!r} on {where}{holder}; "
        "two daemons must not trade the same strategy: stop the other one first")


def _postgres(engine: Engine, book: str) -> BookLock:
    key = _pg_key(book)
    connection = engine.connect()
    got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
    connection.commit()
    if not got:
        connection.close()
        raise _refused(book, f"PostgreSQL database {engine.url.database!r}")

    def release() -> None:
        try:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()
        finally:
            connection.close()

    return BookLock(release)


def _sqlite(database: Path, book: str) -> BookLock:
    path = _sqlite_path(database, book)
    handle = open(path, "a+")
    for attempt in range(5):  # `trader status` may hold it shared for an instant (daemon_alive)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt < 4:
                time.sleep(0.1)
    else:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        raise _refused(book, str(database), f" ({holder})" if holder else "") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
    handle.flush()

    def release() -> None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()

    return BookLock(release)

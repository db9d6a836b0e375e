"""The running daemon's view of its own ledger: whether it can be written, whether it is
damaged, and what `/health` and `/status` must say when the ledger itself cannot say it
(a full disk refuses the very write that would record the error; a damaged file cannot be
trusted with a halt).

* A write that fails (a full disk, an I/O error) is kept in memory as the last error until a
  tick writes again: `/status` shows it, `/health` answers 503 meanwhile. An order intent
  that cannot be committed is never sent (the engine commits it before calling the broker).
* A damaged file (`is_damage`, or SQLite's `PRAGMA quick_check` failing between ticks) halts
  the daemon for good: a copy of the damaged files is kept aside, no tick runs, `/health` and
  `/status` say why and how to restore.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from .damage import damage_message, is_damage, keep_aside, quick_check, reason_of, sqlite_file

log = logging.getLogger("trader.daemon")

# the periodic quick check may take this share of the daemon's time: on a small ledger it
# runs before every tick, on a large one less often
_CHECK_SHARE = 0.02


class LedgerUnusable(SQLAlchemyError):
    """Raised before an order when the ledger that took its intent turns out damaged."""


class LedgerGuard:
    def __init__(self, url, clock: Callable[[], float] = time.monotonic):
        self.path: Path | None = sqlite_file(url)
        self.damaged: str | None = None  # the message, once damage was seen
        self.kept: Path | None = None
        self.write_error: str | None = None
        self._clock = clock
        self._next_check = 0.0
        self._lock = threading.Lock()

    # -- the tick's side ------------------------------------------------------------------
    def usable(self) -> bool:
        """False once damage was seen; otherwise runs the quick check when it is due and
        says whether the ledger passed it."""
        if self.damaged is not None:
            return False
        if self.path is not None and self._clock() >= self._next_check:
            started = self._clock()
            problem = quick_check(self.path)
            self._next_check = self._clock() + (self._clock() - started) / _CHECK_SHARE
            if problem is not None:
                self._mark_damaged(problem)
                return False
        return True

    def before_order(self) -> None:
        """The engine's last step before the broker: the quick check, whatever its schedule
        (an intent can commit on a damaged file; the order must then not be sent)."""
        self._next_check = 0.0
        if not self.usable():
            raise LedgerUnusable(self.damaged)

    def failed(self, exc: BaseException) -> None:
        """A database error while ticking: damage halts; anything else is the last error
        until a tick writes again."""
        if isinstance(exc, LedgerUnusable):
            return  # halted already
        if is_damage(exc):
            self._mark_damaged(reason_of(exc))
            return
        message = f"the ledger cannot be written: {reason_of(exc)}"
        if message != self.write_error:
            log.error("%s; nothing is traded until it can be (no order is sent before its intent is written)",
                      message, extra={"event": "ledger_error"})
        self.write_error = message

    def written(self) -> None:
        """A tick's writes were committed: the last write error is over."""
        if self.write_error is not None:
            log.info("the ledger takes writes again", extra={"event": "ledger_recovered"})
        self.write_error = None

    def _mark_damaged(self, reason: str) -> None:
        with self._lock:
            if self.damaged is not None:
                return
            self.kept = keep_aside(self.path) if self.path is not None else None
            self.damaged = damage_message(str(self.path) if self.path else "database", reason, self.kept)
        log.error("HALTED: %s", self.damaged, extra={"event": "halted"})

    # -- what /health and /status say ---------------------------------------------------------
    def status(self, provider: Callable[[], dict], book: str) -> Callable[[], dict]:
        def status() -> dict:
            from sqlalchemy.exc import SQLAlchemyError

            snap = None
            if self.damaged is None:
                try:
                    snap = provider()
                except SQLAlchemyError as exc:
                    if is_damage(exc):
                        self._mark_damaged(reason_of(exc))
                    else:
                        snap = {"book": book, "state": "unknown",
                                "last_error": f"the ledger cannot be read: {reason_of(exc)}"}
            snap = dict(snap or {"book": book})
            if self.damaged is not None:
                snap.update(state="halted", reason=self.damaged, last_error=self.damaged)
            elif self.write_error is not None:
                snap["last_error"] = self.write_error
            snap["ledger"] = {"writable": self.damaged is None and self.write_error is None,
                              "damaged": self.damaged is not None,
                              "damaged_copy": str(self.kept) if self.kept else None}
            return snap
        return status

    def health(self, provider: Callable[[], tuple[bool, str]]) -> Callable[[], tuple[bool, str]]:
        def health() -> tuple[bool, str]:
            from sqlalchemy.exc import SQLAlchemyError

            if self.damaged is None and self.write_error is None:
                try:
                    return provider()
                except SQLAlchemyError as exc:
                    if not is_damage(exc):
                        return False, f"the ledger cannot be read: {reason_of(exc)}"
                    self._mark_damaged(reason_of(exc))
            if self.damaged is not None:
                return False, f"halted: {self.damaged}"
            return False, self.write_error or "the ledger cannot be written"
        return health

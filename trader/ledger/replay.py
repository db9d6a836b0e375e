"""A replay's ledger: one database transaction per batch of ticks instead of one per tick.

A replay writes to a database of its own that nothing trades from, so it may commit every
`every` ticks: the engine's sessions join the batch's transaction and their commits only
flush (SQLAlchemy's join_transaction_mode="rollback_only"). A session's rollback (a failed
tick) undoes the whole batch: `committed` says from which tick to redo it. Live and paper
daemons never use this; their ticks commit as they go.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker


class GroupCommit:
    def __init__(self, engine: Engine, every: int = 1000):
        self.connection = engine.connect()
        self.connection.begin()
        self.sessions: sessionmaker[Session] = sessionmaker(
            self.connection, expire_on_commit=False, join_transaction_mode="rollback_only")
        self.every = every
        self.ticks = 0
        self.committed = 0  # ticks whose writes are committed

    def tick_done(self) -> None:
        self.ticks += 1
        if self.ticks - self.committed >= self.every:
            self.commit()

    def commit(self) -> None:
        if self.connection.in_transaction():
            self.connection.commit()
        self.committed = self.ticks
        self.connection.begin()

    def close(self) -> None:
        """Commit the ticks done (a failed tick's rollback has already undone its batch)."""
        if not self.connection.closed:
            if self.connection.in_transaction():
                self.connection.commit()
            self.connection.close()

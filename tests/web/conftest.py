"""A dashboard on a real SQLite ledger and a real uvicorn server on 127.0.0.1 (a free port)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from trader.ledger import open_ledger, sessions, store
from trader.ledger.models import DaemonState
from trader.status import snapshot
from trader.web import Site, serve

TOKEN = "dash-0123456789abcdef-token"


@dataclass
class Dash:
    url: str
    factory: object
    server: object

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, trust_env=False, **kw)

    def add_events(self, n: int, kind: str = "note") -> None:
        with self.factory.begin() as s:
            for i in range(n):
                store.record_event(s, kind, f"{kind} {i}", "main")


def start_dash(tmp_path: Path, token: str | None = TOKEN) -> Dash:
    factory = sessions(open_ledger(f"sqlite:///{tmp_path / 'trader.db'}"))
    with factory.begin() as s:
        s.add(DaemonState(book="main", mode="paper", strategy_version="v1",
                          last_tick_at=datetime.now(timezone.utc)))

    def status() -> dict:
        with factory() as s:
            return snapshot(s, "main")

    server = serve(Site(status, lambda: (True, "last tick 1 s ago"), factory, "main", None, tmp_path, token),
                   port=0, host="127.0.0.1")
    return Dash(server.url, factory, server)


@pytest.fixture
def dash(tmp_path: Path) -> Iterator[Dash]:
    d = start_dash(tmp_path)
    yield d
    d.server.stop()


def read_ids(client: httpx.Client, want: int, headers: dict | None = None, params: dict | None = None,
             stop_after: int | None = None) -> list[int]:
    """Event ids from /events until `want` ids (or `stop_after`: then hang up)."""
    ids: list[int] = []
    with client.stream("GET", "/events", headers=headers or {}, params=params or {}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("id: "):
                ids.append(int(line[4:]))
                if len(ids) >= want or (stop_after is not None and len(ids) >= stop_after):
                    break
    return ids

"""`GET /events`: the ledger's event log as Server-Sent Events, resumable by id.

An event's SSE id is its row id in the ledger's `events` table (monotonic, persisted), so a
client that reconnects with `Last-Event-ID` (or `?after=ID`) gets exactly the events after
that one, across a daemon restart too. Events come from every writer of the ledger (the
daemon, `trader halt` in another process, Hermes), so one poller per process reads new rows
and keeps the latest KEEP of them; every client holds only its last id and reads from that
memory, or from the ledger when it is further behind. So a slow client never holds up the
poller or a tick, and its buffer is the socket's (uvicorn waits for a slow reader's transport
to drain); a client whose send takes over SEND_TIMEOUT is dropped and resumes from its id.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time

import anyio.to_thread
from sqlalchemy import func, select

from trader.health import dumps
from trader.ledger.models import Event

log = logging.getLogger("trader.web")

POLL = 0.25  # seconds between two looks at the ledger
KEEP = 5000  # recent events held in memory for clients that keep up
PAGE = 200  # events per read and per write to a client
HEARTBEAT = 15.0  # seconds: a comment line keeps proxies from closing an idle stream
SEND_TIMEOUT = 30.0  # seconds one write may take before the client is dropped
GAP_WAIT = 3.0  # PostgreSQL may commit id n+1 before n: wait this long before skipping a hole
MAX_STREAMS = 2000  # open streams; the excess is answered 503 (the client retries)


def event_dict(row: Event) -> dict:
    return {"id": row.id, "time": row.time, "book": row.book, "kind": row.kind, "message": row.message,
            "data": row.data}


def read_events(factory, after: int, upto: int | None = None, limit: int = PAGE) -> list[dict]:
    """Events with id > after (and <= upto), oldest first, at most `limit`."""
    with factory() as s:
        q = select(Event).where(Event.id > after)
        if upto is not None:
            q = q.where(Event.id <= upto)
        return [event_dict(r) for r in s.scalars(q.order_by(Event.id).limit(limit))]


def _frame(event: dict) -> bytes:
    return f"id: {event['id']}\ndata: {dumps(event)}\n\n".encode()


class EventHub:
    """The process's poller of the event log and its memory of the latest events."""

    def __init__(self, factory, poll: float = POLL, keep: int = KEEP) -> None:
        self.factory, self.poll, self.keep = factory, poll, keep
        self.head: int | None = None  # the last id published to clients
        self.ids: list[int] = []
        self.frames: list[bytes] = []
        self.streams = 0
        self._new: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._gap_since: float | None = None

    async def start(self) -> None:
        if self._task is None:
            self._new = asyncio.Event()
            self.head = await anyio.to_thread.run_sync(self._last_id)
            self._task = asyncio.get_running_loop().create_task(self._run())

    def _last_id(self) -> int:
        with self.factory() as s:
            return int(s.scalar(select(func.max(Event.id))) or 0)

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                rows = await anyio.to_thread.run_sync(read_events, self.factory, self.head, None, 1000)
                self._publish(rows)
                failures = 0
            except Exception as exc:  # a locked or lost ledger: look again, never stop serving
                failures += 1
                log.warning("event stream: reading the ledger failed (%s)", exc.__class__.__name__)
            await asyncio.sleep(self.poll * min(2 ** failures, 40))

    def _publish(self, rows: list[dict]) -> None:
        taken = []
        for row in rows:
            if row["id"] != (taken[-1]["id"] if taken else self.head) + 1:  # a hole in the ids
                self._gap_since = self._gap_since or time.monotonic()
                if time.monotonic() - self._gap_since < GAP_WAIT:
                    break  # it may be a transaction still committing; it is skipped only later
            self._gap_since = None
            taken.append(row)
        if not taken:
            return
        self.ids += [r["id"] for r in taken]
        self.frames += [_frame(r) for r in taken]
        if len(self.ids) > 2 * self.keep:
            del self.ids[:-self.keep], self.frames[:-self.keep]
        self.head = taken[-1]["id"]
        self._new.set()  # wake every waiting client, then a fresh event for the next batch
        self._new = asyncio.Event()

    async def after(self, last: int) -> tuple[list[int], bytes]:
        """The ids and SSE frames of up to PAGE events after `last` (none: caught up)."""
        if last >= self.head:
            return [], b""
        if self.ids and last >= self.ids[0] - 1:
            i = bisect.bisect_right(self.ids, last)
            return self.ids[i:i + PAGE], b"".join(self.frames[i:i + PAGE])
        rows = await anyio.to_thread.run_sync(read_events, self.factory, last, self.head, PAGE)
        return [r["id"] for r in rows], b"".join(_frame(r) for r in rows)

    async def wait(self, last: int, gone: asyncio.Event, timeout: float) -> None:
        """Until an event after `last` is published, the client is gone, or `timeout`."""
        if last < self.head:
            return
        waiters = [asyncio.ensure_future(self._new.wait()), asyncio.ensure_future(gone.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()


class _TooSlow(Exception):
    pass


class EventStream:
    """One client's stream (an ASGI response): every event after `after`, then live ones."""

    def __init__(self, hub: EventHub, after: int) -> None:
        self.hub, self.after = hub, after

    async def __call__(self, scope, receive, send) -> None:
        hub = self.hub
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.ensure_future(watch())
        hub.streams += 1
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-store"),
                (b"x-accel-buffering", b"no")]})  # nginx-style proxies: do not buffer the stream
            await self._write(send, b"retry: 2000\n\n")
            last = self.after
            while not gone.is_set():
                ids, chunk = await hub.after(last)
                if ids:
                    await self._write(send, chunk)
                    last = ids[-1]
                    continue
                before = hub.head
                await hub.wait(last, gone, HEARTBEAT)
                if hub.head == before and not gone.is_set():
                    await self._write(send, b": ping\n\n")
        except (_TooSlow, OSError):
            log.info("event stream: a slow client was dropped; it resumes from its last id")
        finally:
            hub.streams -= 1
            watcher.cancel()
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except Exception:
                pass

    @staticmethod
    async def _write(send, body: bytes) -> None:
        try:
            await asyncio.wait_for(send({"type": "http.response.body", "body": body, "more_body": True}),
                                   SEND_TIMEOUT)
        except asyncio.TimeoutError:
            raise _TooSlow() from None


def parse_after(header: str | None, query: str | None) -> int:
    """The id a client resumes after: `Last-Event-ID` wins over `?after=`; 0 is from the start.
    ValueError with a message for anything but a whole number from 0 to 2**63-1."""
    raw = header if header not in (None, "") else query
    if raw in (None, ""):
        return 0
    raw = raw.strip()
    if not raw.isdigit() or len(raw) > 19 or int(raw) > 2 ** 63 - 1:
        shown = raw[:40] + ("..." if len(raw) > 40 else "")
        raise ValueError(f"Last-Event-ID or ?after= must be an event id, a whole number, got {shown!r}")
    return int(raw)

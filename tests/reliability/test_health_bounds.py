"""The daemon's web server (trader.web.server) under hostile clients (issue 12, item 11): idle
sockets cost no thread and /health answers while 300 of them are held open; a slowloris trickle
and an idle socket are closed at the request deadline; beyond the connection cap a request is
answered 503 at once, not queued. Real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time

import httpx

from trader.web import Site, WebServer, build_app
from trader.web import server as S


def started(health=lambda: (True, "last tick 1 s ago")) -> WebServer:
    site = Site(lambda: {"state": "running"}, health, factory=None, book="main")
    return WebServer(build_app(site), host="127.0.0.1", port=0).start()


def ask(server: WebServer, path: str = "/health", timeout: float = 3.0) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", timeout=timeout, trust_env=False)


def test_health_answers_while_300_idle_sockets_are_held_open_and_they_cost_no_thread():
    server = started()
    idle: list[socket.socket] = []
    try:
        threads = threading.active_count()
        for _ in range(300):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        time.sleep(0.3)  # all accepted
        assert threading.active_count() - threads < 5  # not a thread per idle connection
        for path in ("/health", "/status", "/health"):
            started_at = time.monotonic()
            answer = ask(server, path)
            assert answer.status_code == 200 and time.monotonic() - started_at < 1.0
        assert all(s.fileno() >= 0 for s in idle)
    finally:
        for s in idle:
            s.close()
        server.stop()


def test_a_slowloris_trickle_and_an_idle_socket_are_closed_at_the_deadline(monkeypatch):
    monkeypatch.setattr(S, "REQUEST_TIMEOUT", 1.0)
    server = started()
    try:
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        slow = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        began, closed_after = time.monotonic(), None
        try:
            for _ in range(40):  # a header byte every 0.1 s, never the blank line that ends them
                slow.sendall(b"X")
                time.sleep(0.1)
        except OSError:  # reset by the server
            closed_after = time.monotonic() - began
        if closed_after is None:
            slow.settimeout(1.0)
            assert slow.recv(100) == b"", "still open after 4 s of trickling"  # closed by the server
            closed_after = time.monotonic() - began
        assert closed_after < 3.0
        idle.settimeout(2.0)
        assert idle.recv(100) == b""  # dropped, unanswered
        assert ask(server).status_code == 200
    finally:
        server.stop()


def test_connections_are_capped_and_the_excess_answered_503_at_once(monkeypatch):
    # The cap counts open connections (asyncio serves each without a thread), where the old
    # server counted handler threads; so the 4 held requests are in before the 6 extra ones.
    monkeypatch.setattr(S, "MAX_CONNECTIONS", 4)
    gate, entered = threading.Event(), threading.Semaphore(0)

    def stuck() -> tuple[bool, str]:
        entered.release()
        gate.wait(10)
        return True, "ok"

    server = started(health=stuck)
    try:
        results: list[int] = []
        lock = threading.Lock()

        def one() -> None:
            try:
                answer = ask(server, timeout=10)
                code = answer.status_code
            except httpx.HTTPError:
                code = -1
            with lock:
                results.append(code)

        held = [threading.Thread(target=one) for _ in range(4)]
        for c in held:
            c.start()
        for _ in held:
            assert entered.acquire(timeout=5)  # each held request is in the provider
        extra = [threading.Thread(target=one) for _ in range(6)]
        for c in extra:
            c.start()
        deadline = time.monotonic() + 5
        while len(results) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(results) == [503] * 6, results  # beyond the cap: answered at once, not queued
        gate.set()
        for c in held + extra:
            c.join(10)
        assert sorted(results) == [200] * 4 + [503] * 6
        assert ask(server).status_code == 200  # and the slots are free again
    finally:
        gate.set()
        server.stop()

"""The health server under hostile clients (issue 12, item 11): idle sockets cost no thread and
/health answers while 300 of them are held open; a slowloris trickle is closed at the request
deadline; handler threads are capped, the excess answered 503 at once. Real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time

import httpx

from trader import health as H
from trader.health import HealthServer


def started(monkeypatch=None, health=lambda: (True, "last tick 1 s ago")) -> HealthServer:
    return HealthServer(lambda: {"state": "running"}, health, host="127.0.0.1", port=0).start()


def ask(server: HealthServer, path: str = "/health", timeout: float = 3.0) -> httpx.Response:
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
    monkeypatch.setattr(H, "_REQUEST_TIMEOUT", 1.0)
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


def test_handler_threads_are_capped_and_the_excess_answered_503_at_once(monkeypatch):
    monkeypatch.setattr(H, "_MAX_ACTIVE", 4)
    gate = threading.Event()

    def stuck() -> tuple[bool, str]:
        gate.wait(10)
        return True, "ok"

    server = started(health=stuck)
    try:
        results: list[int] = []
        lock = threading.Lock()

        def one() -> None:
            try:
                code = ask(server, timeout=10).status_code
            except httpx.HTTPError:
                code = -1
            with lock:
                results.append(code)

        callers = [threading.Thread(target=one) for _ in range(10)]
        for c in callers:
            c.start()
        deadline = time.monotonic() + 5
        while len(results) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(results) == [503] * 6, results  # beyond the cap: answered at once, not queued
        gate.set()
        for c in callers:
            c.join(10)
        assert sorted(results) == [200] * 4 + [503] * 6
        assert ask(server).status_code == 200  # and the slots are free again
    finally:
        gate.set()
        server.stop()

"""The event stream under load (slow): 1,000 events while 5 clients hang up at random and
resume from their last id, each ending with exactly ids 1..1000 in order; 1,000 concurrent
streams, idle sockets and a slowloris while events keep coming: every stream gets them and
/health answers."""

from __future__ import annotations

import random
import socket
import threading

import httpx
import pytest

from .conftest import read_ids

pytestmark = pytest.mark.slow


def test_five_clients_that_drop_at_random_each_get_ids_1_to_1000_in_order(dash):
    writer = threading.Thread(target=lambda: [dash.add_events(50) for _ in range(20)])
    writer.start()
    results: dict[int, list[int]] = {}

    def client(n: int) -> None:
        rng, got = random.Random(n), []
        with dash.client() as c:
            while len(got) < 1000:
                last = {"Last-Event-ID": str(got[-1])} if got else {}
                got += read_ids(c, 1000 - len(got), headers=last, stop_after=rng.randint(1, 150))
        results[n] = got

    clients = [threading.Thread(target=client, args=(n,)) for n in range(5)]
    for t in clients:
        t.start()
    writer.join()
    for t in clients:
        t.join(120)
    assert sorted(results) == list(range(5))
    for got in results.values():
        assert got == list(range(1, 1001))


def test_a_thousand_streams_idle_sockets_and_a_slowloris_and_health_still_answers(dash):
    dash.add_events(1)
    streams, idle = [], []
    try:
        for _ in range(1000):
            s = socket.create_connection(("127.0.0.1", dash.server.port), timeout=30)
            s.sendall(b"GET /events?after=0 HTTP/1.1\r\nHost: x\r\n\r\n")
            streams.append(s)
        for _ in range(200):
            idle.append(socket.create_connection(("127.0.0.1", dash.server.port), timeout=30))
        slow = socket.create_connection(("127.0.0.1", dash.server.port), timeout=30)
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        idle.append(slow)
        r = httpx.get(dash.url + "/health", timeout=30, trust_env=False)
        assert r.status_code == 200
        dash.add_events(1)  # a tick's event reaches all 1,000 streams
        for s in streams:
            seen = b""
            while b"id: 2\n" not in seen:
                chunk = s.recv(65536)
                assert chunk, "a stream was closed"
                seen += chunk
        assert httpx.get(dash.url + "/health", timeout=30, trust_env=False).status_code == 200
    finally:
        for s in streams + idle:
            s.close()

"""/health and /status on the daemon's web server (trader.web) on a real socket (127.0.0.1, a
free port), driven with httpx; and the JSON and $PORT helpers they share with the CLI and logs.

These are the checks that proved the old hand-written server (trader.health.HealthServer),
kept against the server users run now. Where the answer differs, the test says why."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest

from trader.errors import InputError
from trader.health import dumps, port_from_env, to_jsonable
from trader.web import Site, WebServer, build_app

SECRET = "sk-live-0123456789abcdef"


@dataclass
class State:
    """What the providers report; tests change it while the server runs."""

    ok: bool = True
    reason: str = "ticking"
    status: dict[str, Any] = field(default_factory=lambda: {"mode": "paper"})
    fail: Exception | None = None
    delay: float = 0.0

    def health(self) -> tuple[bool, str]:
        if self.fail:
            raise self.fail
        return self.ok, self.reason

    def get_status(self) -> dict[str, Any]:
        if self.fail:
            raise self.fail
        time.sleep(self.delay)
        return self.status


def web_server(state: State, port: int = 0) -> WebServer:
    # No ledger: /health and /status read only the providers (the daemon's reads of its snapshot).
    site = Site(state.get_status, state.health, factory=None, book="main")
    return WebServer(build_app(site), host="127.0.0.1", port=port)


@pytest.fixture(scope="module")
def shared() -> State:
    return State()


@pytest.fixture(scope="module")
def server(shared: State) -> Iterator[WebServer]:
    # One server for the module; state is reset per test.
    with web_server(shared) as srv:
        yield srv


@pytest.fixture
def state(shared: State) -> State:
    shared.__init__()  # type: ignore[misc]  # back to the defaults
    return shared


@pytest.fixture
def client(server: WebServer) -> Iterator[httpx.Client]:
    # trust_env=False: a proxy from the environment must not see local test traffic.
    with httpx.Client(base_url=server.url, timeout=5, trust_env=False) as c:
        yield c


def test_port_zero_picks_a_free_port(server: WebServer) -> None:
    assert server.running and 0 < server.port < 65536
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_health_switches_between_200_and_503(state: State, client: httpx.Client) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"ok": True, "reason": "ticking"}

    state.ok, state.reason = False, "no candle for 3 intervals"
    r = client.get("/health")
    assert r.status_code == 503
    assert r.json() == {"ok": False, "reason": "no candle for 3 intervals"}

    state.ok, state.reason = True, "recovered"
    assert client.get("/health?verbose=1").status_code == 200  # query strings are ignored


def test_status_is_json_with_datetimes_decimals_and_nan(state: State, client: httpx.Client) -> None:
    berlin = timezone(timedelta(hours=1))
    state.status = {
        "mode": "paper",
        "last_tick": datetime(2026, 11, 25, 13, 0, tzinfo=berlin),
        "started": datetime(2026, 11, 25, 9, 30),  # naive: taken as UTC
        "equity": Decimal("10234.50"),
        "sharpe": float("nan"),
        "max_dd": float("-inf"),
        "symbols": ("BTC/USDT",),
        "uptime": timedelta(minutes=2),
        "nested": {1: [float("inf"), Decimal("NaN")]},
    }
    r = client.get("/status")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "no-store"
    assert "NaN" not in r.text and "Infinity" not in r.text  # strict JSON
    assert r.json() == {
        "mode": "paper",
        "last_tick": "2026-11-25T12:00:00Z",
        "started": "2026-11-25T09:30:00Z",
        "equity": 10234.5,
        "sharpe": None,
        "max_dd": None,
        "symbols": ["BTC/USDT"],
        "uptime": 120.0,
        "nested": {"1": [None, None]},
    }


def test_unknown_paths_are_404_json(client: httpx.Client) -> None:
    # "/" is no longer among them: it is the dashboard's page now.
    for path in ("/healthz", "/status/extra", "/../etc/passwd", "/api/nope"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {"error": "not found"}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_writes_are_405_and_change_nothing(method: str, state: State, client: httpx.Client) -> None:
    for path in ("/health", "/status"):
        r = client.request(method, path, json={"ok": False})
        assert r.status_code == 405
        assert r.headers["allow"] == "GET, HEAD"
        assert r.json() == {"error": "method not allowed"}
    # An unknown path is 404 for any method now (the old server said 405): the app has routes
    # that take POST (the controls), so the method alone says nothing about a path it lacks.
    assert client.request(method, "/anything", json={"ok": False}).json() == {"error": "not found"}
    assert client.get("/health").json() == {"ok": True, "reason": "ticking"}


def test_unknown_method_is_json_too(client: httpx.Client) -> None:
    # 405 with Allow now (the old server said 501): the method is not one /health accepts.
    r = client.request("BREW", "/health")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    assert r.headers["content-type"] == "application/json"
    assert "error" in r.json()


def test_head_has_headers_and_no_body(state: State, client: httpx.Client) -> None:
    get = client.get("/health")
    head = client.head("/health")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(get.content))
    assert client.head("/status").status_code == 200
    assert client.head("/nope").status_code == 404
    state.ok = False
    assert client.head("/health").status_code == 503


def test_a_raising_provider_is_500_without_the_exception_text(
    state: State, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    state.fail = RuntimeError(f"exchange said: bad key {SECRET}")
    with caplog.at_level(logging.DEBUG):
        health = client.get("/health")
        status = client.get("/status")
    assert health.status_code == 500 and health.json() == {"ok": False, "reason": "internal error"}
    assert status.status_code == 500 and status.json() == {"error": "internal error"}
    for r in (health, status):
        assert SECRET not in r.text and "RuntimeError" not in r.text
    assert "health provider raised RuntimeError" in caplog.text
    assert "status provider raised RuntimeError" in caplog.text
    assert SECRET not in caplog.text

    state.fail = None  # the server keeps serving
    assert client.get("/health").status_code == 200


def test_an_unserialisable_status_is_500(state: State, client: httpx.Client) -> None:
    state.status = {"lock": threading.Lock()}
    r = client.get("/status")
    assert r.status_code == 500 and r.json() == {"error": "internal error"}


def test_concurrent_requests_run_in_parallel(state: State, server: WebServer) -> None:
    state.delay = 0.2
    n = 8

    with httpx.Client(base_url=server.url, timeout=5, trust_env=False) as c:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=n * 2) as pool:
            codes = list(pool.map(lambda path: c.get(path).status_code, ["/status", "/health"] * n))
        elapsed = time.perf_counter() - started
    assert codes == [200] * (2 * n)
    assert elapsed < n * state.delay / 2  # serial handling would take n * 0.2 s


def test_no_request_lines_on_stderr(client: httpx.Client, capsys: pytest.CaptureFixture[str]) -> None:
    client.get("/health")
    client.get("/nope")
    client.post("/status")
    assert capsys.readouterr().err == ""


def test_stop_frees_the_port_and_is_idempotent(state: State) -> None:
    srv = web_server(state).start()
    port = srv.port
    with pytest.raises(RuntimeError):
        srv.start()
    srv.stop()
    srv.stop()
    assert not srv.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=1, trust_env=False)
    # The same port can be bound again right away.
    with web_server(state, port=port) as again:
        assert httpx.get(f"{again.url}/health", timeout=5, trust_env=False).status_code == 200


def test_a_busy_port_is_an_input_error(state: State, server: WebServer) -> None:
    # InputError: the command line prints one line and exits 2 (see trader.cli)
    with pytest.raises(InputError, match=f"127.0.0.1:{server.port}"):
        web_server(state, port=server.port).start()


def test_port_from_env() -> None:
    assert port_from_env({}) == 8080
    assert port_from_env({}, default=9000) == 9000
    assert port_from_env({"PORT": ""}) == 8080
    assert port_from_env({"PORT": " 8081 "}) == 8081
    assert port_from_env({"PORT": "65535"}) == 65535
    for bad in ("http", "80.5", "0x50", "-1"):
        with pytest.raises(InputError, match="PORT.*whole number|PORT.*from 1 to 65535"):
            port_from_env({"PORT": bad})
    for bad in ("0", "65536", "99999"):
        with pytest.raises(InputError, match=r"environment variable PORT must be from 1 to 65535, got \d+"):
            port_from_env({"PORT": bad})


def test_to_jsonable_and_dumps() -> None:
    assert to_jsonable({"a": (1, 2.5, None, True)}) == {"a": [1, 2.5, None, True]}
    assert dumps({"x": float("nan")}) == '{"x": null}'
    assert to_jsonable(datetime(2026, 1, 1, 0, 0, 0, 500, tzinfo=timezone.utc)) == "2026-01-01T00:00:00.000500Z"
    with pytest.raises(TypeError):
        to_jsonable(object())
    assert to_jsonable(object(), default=lambda o: "obj") == "obj"

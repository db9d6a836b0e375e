"""Webhook notifications against a real HTTP server on 127.0.0.1 that records each request
and answers as scripted: a status (with headers) or a hang until released."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from trader.errors import InputError
from trader.notify import DISCORD_LIMIT, Notifier, NotifyHandler, _retry_after, detect_style

SECRET = "sk-live-0123456789abcdef"


class Hook:
    """A webhook endpoint: `script` holds the answers to the next requests (default 200)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: deque = deque()
        self.release = threading.Event()
        self.cond = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with hook.cond:
                    hook.requests.append({"time": time.monotonic(), "path": self.path,
                                          "body": json.loads(body), "raw": body.decode()})
                    answer = hook.script.popleft() if hook.script else 200
                    hook.cond.notify_all()
                if answer == "hang":
                    hook.release.wait(10)
                    answer = 200
                status, headers = answer if isinstance(answer, tuple) else (answer, {})
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the client gave up (timeout) before we answered
                    pass

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/T0KEN"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def wait_for(self, n: int, timeout: float = 5.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.requests) >= n, timeout)

    def bodies(self) -> list[dict]:
        return [r["body"] for r in self.requests]

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    server = Hook()
    yield server
    server.stop()


@pytest.fixture
def make(hook):
    made: list[Notifier] = []

    def factory(**kwargs) -> Notifier:
        kwargs.setdefault("backoff", 0.001)
        kwargs.setdefault("environ", {})
        notifier = Notifier(kwargs.pop("url", hook.url), **kwargs)
        made.append(notifier)
        return notifier

    yield factory
    hook.release.set()  # let a hanging request end, so closing is quick
    for notifier in made:
        notifier.close(timeout=0.5)


# -- styles ----------------------------------------------------------------------------------


@pytest.mark.parametrize("url, style", [
    ("https://hooks.slack.com/services/T0/B0/xyz", "slack"),
    ("https://discord.com/api/webhooks/1/abc", "discord"),
    ("https://discordapp.com/api/webhooks/1/abc", "discord"),
    ("https://discord.com/channels/1", "json"),
    ("https://example.com/hook", "json"),
])
def test_style_is_detected_from_the_url(url, style):
    assert detect_style(url) == style
    assert Notifier(url, environ={}).style == style


def test_json_delivery(hook, make):
    notifier = make()
    notifier.notify("order_filled", "bought 0.1 BTC", {"qty": 0.1, "price": 50_000})
    assert notifier.flush(5)
    (body,) = hook.bodies()
    assert body["event"] == "order_filled"
    assert body["message"] == "bought 0.1 BTC"
    assert body["data"] == {"qty": 0.1, "price": 50_000}
    assert datetime.fromisoformat(body["time"].replace("Z", "+00:00")).tzinfo is not None
    assert hook.requests[0]["path"] == "/hook/T0KEN"
    assert notifier.sent == 1


def test_slack_delivery(hook, make):
    notifier = make(style="slack")
    notifier.notify("halted", "drawdown 16% > 15%", {"version": "abc123"})
    assert notifier.flush(5)
    # Slack shows "&gt;" as ">": its three control characters are escaped as it documents
    assert hook.bodies() == [{"text": "[halted] drawdown 16% &gt; 15%\nversion: abc123"}]


def test_discord_delivery_is_cut_to_its_limit(hook, make):
    notifier = make(style="discord")
    notifier.notify("review", "x" * 5000)
    assert notifier.flush(5)
    (body,) = hook.bodies()
    assert set(body) == {"content", "allowed_mentions"}
    assert len(body["content"]) == DISCORD_LIMIT
    assert body["content"].startswith("\\[review\\] xxx")


# -- retries ---------------------------------------------------------------------------------


def test_server_errors_are_retried_until_success(hook, make):
    hook.script.extend([500, 503])
    notifier = make()
    notifier.notify("error", "boom")
    assert notifier.flush(5)
    assert len(hook.requests) == 3
    assert (notifier.sent, notifier.failed) == (1, 0)


def test_gives_up_after_max_attempts_with_a_warning(hook, make, caplog):
    hook.script.extend([500] * 10)
    notifier = make(max_attempts=3)
    with caplog.at_level(logging.WARNING, logger="trader.notify"):
        notifier.notify("error", "boom")
        assert notifier.flush(5)
    assert len(hook.requests) == 3
    assert notifier.failed == 1
    assert "gave up" in caplog.text and "HTTP 500" in caplog.text
    assert "T0KEN" not in caplog.text  # the URL's path is the webhook's secret


def test_client_errors_are_not_retried(hook, make, caplog):
    hook.script.append(404)
    notifier = make()
    with caplog.at_level(logging.WARNING, logger="trader.notify"):
        notifier.notify("error", "boom")
        assert notifier.flush(5)
    assert len(hook.requests) == 1
    assert "HTTP 404 (not retried)" in caplog.text


def test_retry_after_is_honoured(hook, make):
    hook.script.append((429, {"Retry-After": "1"}))
    notifier = make(backoff=0.001)
    notifier.notify("order_filled", "filled")
    assert notifier.flush(5)
    first, second = hook.requests
    assert second["time"] - first["time"] >= 0.9
    assert notifier.sent == 1


def test_retry_after_forms():
    assert _retry_after("3", 1.0) == 3.0
    assert _retry_after(None, 1.5) == 1.5
    assert _retry_after("soon", 1.5) == 1.5
    assert _retry_after("100000", 1.0) == 300.0  # capped
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 <= _retry_after(later, 1.0) <= 30


def test_unreachable_webhook_is_retried_then_given_up(make, caplog):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    notifier = make(url=f"http://127.0.0.1:{port}/x", max_attempts=3)
    with caplog.at_level(logging.WARNING, logger="trader.notify"):
        notifier.notify("error", "boom")
        assert notifier.flush(5)
    assert notifier.failed == 1
    assert "network error" in caplog.text


# -- never blocking ----------------------------------------------------------------------------


def test_a_hanging_webhook_never_blocks_notify(hook, make, caplog):
    hook.script.extend(["hang"] * 5)
    notifier = make(timeout=0.2, max_attempts=2)
    with caplog.at_level(logging.WARNING, logger="trader.notify"):
        notifier.notify("order_filled", "first")
        assert hook.wait_for(1)  # the worker is now stuck in a request
        durations = []
        for i in range(50):
            start = time.perf_counter()
            notifier.notify("order_filled", f"fill {i}")
            durations.append(time.perf_counter() - start)
        durations.sort()
        assert durations[25] < 0.001  # microseconds, typically
        assert durations[-1] < 0.05  # even a scheduler hiccup stays far below the 0.2 s timeout
        assert hook.wait_for(2)  # the timed-out request was retried
        deadline = time.monotonic() + 5
        while notifier.failed < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert "timed out" in caplog.text


def test_full_queue_drops_the_oldest(hook, make, caplog):
    hook.script.append("hang")
    notifier = make(queue_size=3)
    with caplog.at_level(logging.WARNING, logger="trader.notify"):
        notifier.notify("order_filled", "m0")
        assert hook.wait_for(1)  # m0 is in flight, the queue is empty
        for i in range(1, 6):
            notifier.notify("order_filled", f"m{i}")
    assert notifier.dropped == 2
    assert "dropped the oldest" in caplog.text
    hook.release.set()
    assert notifier.flush(5)
    assert [b["message"] for b in hook.bodies()] == ["m0", "m3", "m4", "m5"]


def test_close_stops_the_worker(hook, make):
    notifier = make()
    notifier.notify("review", "weekly report")
    notifier.close(timeout=2)
    assert [b["message"] for b in hook.bodies()] == ["weekly report"]
    assert not notifier._thread.is_alive()
    notifier.notify("review", "after close")  # ignored, no error
    assert len(hook.requests) == 1


def test_bad_data_is_logged_not_raised(hook, make, caplog):
    notifier = make()
    with caplog.at_level(logging.WARNING, logger="trader.notify"):
        notifier.notify("error", "boom", data=[1, 2, 3])  # type: ignore[arg-type]
        notifier.notify("error", "odd values", {"when": datetime(2026, 1, 1), "obj": object()})
        assert notifier.flush(5)
    assert "not queued" in caplog.text
    assert [b["message"] for b in hook.bodies()] == ["odd values"]


# -- secrets and configuration -----------------------------------------------------------------


def test_secrets_are_scrubbed_in_every_style(hook, make):
    env = {"EXCHANGE_API_SECRET": SECRET, "HOME": "/root"}
    for style in ("json", "slack", "discord"):
        notifier = make(style=style, environ=env, secrets=["my-passphrase"])
        notifier.notify("error", f"auth failed for {SECRET}", {"request": f"sig={SECRET}&p=my-passphrase"})
        assert notifier.flush(5)
    assert len(hook.requests) == 3
    for request in hook.requests:
        assert SECRET not in request["raw"] and "my-passphrase" not in request["raw"]
        assert "***" in request["raw"].replace("\\\\", "")  # Discord's markdown escapes removed


def test_from_env():
    off = Notifier.from_env({})
    assert not off.enabled
    off.notify("error", "nobody listens")  # a no-op: no thread, no error
    assert off._thread is None
    off.close()

    on = Notifier.from_env({"TRADER_WEBHOOK_URL": "https://example.com/h", "TRADER_WEBHOOK_STYLE": "Slack"})
    assert on.enabled and on.style == "slack" and on.host == "example.com"
    with pytest.raises(InputError, match="TRADER_WEBHOOK_STYLE"):
        Notifier.from_env({"TRADER_WEBHOOK_URL": "https://example.com/h", "TRADER_WEBHOOK_STYLE": "teams"})
    with pytest.raises(InputError, match="http"):
        Notifier.from_env({"TRADER_WEBHOOK_URL": "hooks.slack.com/services/x"})


# -- the logging handler -------------------------------------------------------------------------


def test_handler_forwards_only_the_chosen_events(hook, make):
    notifier = make(environ={"ANTHROPIC_API_KEY": SECRET})
    logger = logging.getLogger("test.notify.engine")
    logger.setLevel(logging.INFO)
    handler = NotifyHandler(notifier, events={"order_filled", "halted"})
    logger.addHandler(handler)
    try:
        logger.info("order %s filled", "c-1", extra={"event": "order_filled", "client_order_id": "c-1"})
        logger.info("tick", extra={"event": "tick"})
        logger.info("no event at all")
        logger.error("HALTED: key %s leaked", SECRET, extra={"event": "halted"})
        logging.getLogger("trader.notify").warning("loop?", extra={"event": "halted"})
    finally:
        logger.removeHandler(handler)
    assert notifier.flush(5)
    bodies = hook.bodies()
    assert [b["event"] for b in bodies] == ["order_filled", "halted"]
    assert bodies[0]["message"] == "order c-1 filled"
    assert bodies[0]["data"]["client_order_id"] == "c-1"
    assert bodies[0]["data"]["level"] == "INFO"
    assert SECRET not in hook.requests[1]["raw"] and "HALTED: key *** leaked" == bodies[1]["message"]


def test_handler_default_events_and_exceptions(hook, make):
    notifier = make()
    logger = logging.getLogger("test.notify.daemon")
    logger.setLevel(logging.INFO)
    handler = NotifyHandler(notifier)
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError("exchange down")
        except RuntimeError:
            logger.exception("tick failed", extra={"event": "error"})
        logger.info("report", extra={"event": "review", "report": "reports/w1.md"})
        logger.info("tick", extra={"event": "tick"})
    finally:
        logger.removeHandler(handler)
    assert notifier.flush(5)
    first, second = hook.bodies()
    assert first["event"] == "error" and first["data"]["exception"] == "RuntimeError: exchange down"
    assert second["event"] == "review" and second["data"]["report"] == "reports/w1.md"

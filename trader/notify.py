"""Webhook notifications: fills, halts, errors and Hermes reports, sent to Slack, Discord or
any endpoint that takes JSON.

A notification must never slow or break trading: `Notifier.notify` only appends to a bounded
in-memory queue (the oldest entry is dropped when it is full) and returns; one daemon thread
delivers, retrying under trader.retry's policy on network errors, timeouts, 429 (waiting at
least its Retry-After) and 5xx. Every failure is logged on the `trader.notify` logger, never raised.
Secret values (exchange and API keys in the environment) are masked before anything leaves
the process.

Wiring is one line: `logging.getLogger().addHandler(NotifyHandler(Notifier.from_env()))`
forwards every log record whose `extra={"event": ...}` is one of the chosen events.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from . import retry
from .errors import InputError
from .logs import _STANDARD_ATTRS, Scrubber, _loggable, _message, secret_env_values

log = logging.getLogger("trader.notify")

Style = Literal["slack", "discord", "json", "auto"]
STYLES = ("slack", "discord", "json", "auto")

# Log events worth a message on the phone: fills, halts, errors and Hermes' verdicts.
DEFAULT_EVENTS = frozenset({
    "order_filled", "order_rejected", "order_unknown", "halted", "error", "config_rejected",
    "review", "review_failed", "promoted", "rolled_back",
})

DISCORD_LIMIT = 2000  # characters in a Discord message's content
SLACK_LIMIT = 4000  # Slack's advice for the text field; longer texts get truncated by Slack anyway
MAX_BACKOFF = 60.0  # seconds between two attempts, at most
MAX_RETRY_AFTER = 300.0  # a server asking for more than this is not waited for longer


@dataclass(frozen=True)
class _Item:
    kind: str
    message: str
    data: dict[str, Any]
    time: float


def detect_style(url: str) -> str:
    """slack for hooks.slack.com, discord for Discord webhooks, json for anything else."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host == "hooks.slack.com":
        return "slack"
    if host.endswith("discordapp.com") or (host.endswith("discord.com") and parts.path.startswith("/api/webhooks")):
        return "discord"
    return "json"


class Notifier:
    """Delivers notifications to one webhook from a background thread; a None URL gives a
    notifier that does nothing (so callers never need to check)."""

    def __init__(
        self,
        url: str | None,
        *,
        style: Style = "auto",
        client: httpx.Client | None = None,
        max_attempts: int = 5,
        backoff: float = 1.0,
        timeout: float = 10.0,
        queue_size: int = 100,
        secrets: Iterable[str] = (),
        environ: Mapping[str, str] | None = None,
    ) -> None:
        url = (url or "").strip() or None
        if style not in STYLES:
            raise InputError(f"webhook style must be one of {', '.join(STYLES)}, got {style!r}")
        if url is not None and urlsplit(url).scheme not in ("http", "https"):
            # The URL itself holds a token (Slack, Discord): never echo it.
            raise InputError("the webhook URL must start with http:// or https://")
        if max_attempts < 1 or queue_size < 1:
            raise ValueError("max_attempts and queue_size must be at least 1")
        self.url = url
        self.style = (detect_style(url) if style == "auto" else style) if url else "json"
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.timeout = timeout
        self.queue_size = queue_size
        # Read once: the environment's credentials are the ones that might leak into a message.
        self._scrubber = Scrubber([*secrets, *secret_env_values(environ)])
        self._client = client
        self._owns_client = client is None
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closing = False
        self._stop = threading.Event()  # set when close() gives up waiting: abandon retries
        self._thread: threading.Thread | None = None
        # Counters, for status pages and tests.
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> "Notifier":
        """TRADER_WEBHOOK_URL (unset: a no-op notifier) and TRADER_WEBHOOK_STYLE (default auto)."""
        env = os.environ if environ is None else environ
        style = (env.get("TRADER_WEBHOOK_STYLE") or "auto").strip().lower()
        if style not in STYLES:
            raise InputError(f"TRADER_WEBHOOK_STYLE must be one of {', '.join(STYLES)}, got {style!r}")
        return cls(env.get("TRADER_WEBHOOK_URL"), style=style, environ=env, **kwargs)  # type: ignore[arg-type]

    @property
    def enabled(self) -> bool:
        return self.url is not None

    @property
    def host(self) -> str:
        """Where notifications go, safe to log (the path of a webhook URL is its secret)."""
        if self.url is None:
            return "-"
        return urlsplit(self.url).hostname or "?"

    # -- the caller's side: never blocks, never raises ----------------------------------------
    def notify(self, kind: str, message: str, data: Mapping[str, Any] | None = None) -> None:
        if self.url is None or self._closing:
            return
        dropped: _Item | None = None
        try:
            item = _Item(str(kind), str(message), dict(data or {}), time.time())
            with self._cond:
                if len(self._queue) >= self.queue_size:
                    dropped = self._queue.popleft()
                    self.dropped += 1
                self._queue.append(item)
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="trader-notify", daemon=True)
                    self._thread.start()
                self._cond.notify()
        except Exception as exc:  # e.g. data that is not a mapping: lose the message, not the tick
            log.warning("notification not queued: %s", type(exc).__name__, extra={"event": "notify_error"})
            return
        if dropped is not None:
            log.warning("notification queue full (%d): dropped the oldest (%s)", self.queue_size,
                        dropped.kind, extra={"event": "notify_dropped"})

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued has been delivered or given up; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Deliver what is queued for up to `timeout` seconds, then stop the worker."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._stop.set()  # abandons a retry wait; a request in flight ends at its own timeout
        with self._cond:
            left = len(self._queue) + (1 if self._busy else 0)
        if left:
            log.warning("notifier closed with %d notification(s) undelivered", left,
                        extra={"event": "notify_dropped"})
        if self._owns_client and self._client is not None and not (thread and thread.is_alive()):
            self._client.close()

    # -- the worker ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue or self._stop.is_set():
                    return
                item = self._queue.popleft()
                self._busy = True
            try:
                self._deliver(item)
            except Exception as exc:  # a bug here must not kill the worker
                self.failed += 1
                log.warning("notification %s failed: %s", item.kind, type(exc).__name__,
                            extra={"event": "notify_failed"})
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _deliver(self, item: _Item) -> None:
        payload = self.payload(item)
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout)
        tries: list[str] = []  # why each attempt failed

        def post() -> None:
            tries.append("")
            try:
                response = self._client.post(self.url, json=payload, timeout=self.timeout)  # type: ignore[arg-type,union-attr]
            except httpx.TimeoutException:
                raise _Retry("timed out") from None
            except httpx.HTTPError as exc:  # connection refused, reset, DNS, protocol errors
                raise _Retry(f"network error ({type(exc).__name__})") from None
            status = response.status_code
            if status == 429:
                raise _Retry("rate limited (HTTP 429)", _retry_after(response.headers.get("Retry-After"), 0.0))
            if status >= 500:
                raise _Retry(f"server error (HTTP {status})")
            if not 200 <= status < 300:  # the request itself is wrong (bad URL, deleted webhook): retrying won't help
                raise _Refused(status)

        def retrying(exc: BaseException, attempt: int, wait: float) -> None:
            tries[-1] = str(exc)
            log.debug("webhook at %s: %s; attempt %d of %d, retrying in %.2fs", self.host, exc,
                      attempt, self.max_attempts, wait)

        try:
            retry.call(post, attempts=self.max_attempts, first=self.backoff, cap=MAX_BACKOFF, retry_on=_Retry,
                       stop=self._stop, on_retry=retrying)
        except _Refused as exc:
            self.failed += 1
            log.warning("webhook at %s refused notification %s: HTTP %d (not retried)",
                        self.host, item.kind, exc.status, extra={"event": "notify_failed"})
            return
        except (_Retry, retry.Stopped) as exc:
            self.failed += 1
            reason = str(exc) or (tries[-1] if tries else "") or "notifier closed"
            log.warning("gave up on notification %s to %s after %d attempt(s): %s", item.kind, self.host,
                        max(len(tries), 1), reason, extra={"event": "notify_failed"})
            return
        self.sent += 1

    def payload(self, item: _Item) -> dict[str, Any]:
        """The request body in this notifier's style, secrets masked. Masked before any
        truncation, so a cut can never leave half a key readable."""
        scrub = self._scrubber
        kind = scrub.text(item.kind)
        message = scrub.text(item.message)
        data = scrub.tree({str(k): _loggable(v) for k, v in item.data.items()})
        if self.style == "json":
            when = datetime.fromtimestamp(item.time, tz=timezone.utc)
            return {"event": kind, "message": message, "data": data,
                    "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z")}
        text = f"[{kind}] {message}"
        if data:
            text += "\n" + "\n".join(f"{k}: {v}" for k, v in data.items())
        if self.style == "discord":  # no pings from user text (@everyone), no masked links
            return {"content": _truncate(_discord_text(text), DISCORD_LIMIT), "allowed_mentions": {"parse": []}}
        return {"text": _truncate(_slack_text(text), SLACK_LIMIT)}


class _Retry(Exception):
    """An attempt that may succeed later; `retry_after`: the seconds the server asked for."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _Refused(Exception):
    """The webhook refused the request itself (a 4xx other than 429): never retried."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def _slack_text(text: str) -> str:
    """Slack's three control characters escaped as it documents: `<url|label>` links and
    `<!channel>` mentions cannot be formed from user text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_DISCORD_MARKDOWN = re.compile(r"([\\*_~`|>\[\]()#<])")


def _discord_text(text: str) -> str:
    """Discord markdown escaped with backslashes (emphasis, code, spoilers, quotes, headings,
    masked links), and mentions broken with a zero-width space."""
    text = _DISCORD_MARKDOWN.sub(r"\\\1", text)
    return re.sub(r"@(everyone|here|&?\d)", "@\u200b\\1", text)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _retry_after(header: str | None, fallback: float) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), capped."""
    if not header:
        return fallback
    try:
        seconds = float(header)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(header) - datetime.now(timezone.utc)).total_seconds()
        except (TypeError, ValueError):
            return fallback
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class NotifyHandler(logging.Handler):
    """Forwards log records whose `extra={"event": ...}` is in `events` to a Notifier: the
    message becomes the text, the other extra fields the data."""

    def __init__(self, notifier: Notifier, events: Iterable[str] = DEFAULT_EVENTS,
                 level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.notifier = notifier
        self.events = frozenset(events)

    def emit(self, record: logging.LogRecord) -> None:
        # Our own warnings never loop back into the queue they are about.
        if record.name == log.name or record.name.startswith(log.name + "."):
            return
        event = getattr(record, "event", None)
        if event not in self.events:
            return
        try:
            data = {k: v for k, v in record.__dict__.items()
                    if k not in _STANDARD_ATTRS and k != "event" and not k.startswith("_")}
            data["level"] = record.levelname
            if record.exc_info and record.exc_info[0] is not None:
                data["exception"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
            self.notifier.notify(str(event), _message(record), data)
        except Exception:  # logging must never raise into the caller; no handleError: it prints unmasked
            pass

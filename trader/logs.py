"""Logging for the daemon: one line per record on stdout, plain text or JSON, secrets masked.

Text:  `2026-11-25T12:00:00Z INFO trader.engine: order filled event=order_filled qty=1.2`
JSON:  `{"time": "2026-11-25T12:00:00.000Z", "level": "INFO", "logger": "trader.engine",
        "message": "order filled", "event": "order_filled", "qty": 1.2}`

Fields passed with `extra={...}` become `key=value` pairs or JSON fields. Every secret value
(given to `setup_logging`, or found in an env var named like a key, secret, password or token)
is replaced by `***` in the message, the extra fields and the exception text, so a key that
ends up in an exchange error message never reaches Railway's log store.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from trader.errors import InputError
from trader.health import to_jsonable

MASK = "***"
MIN_SECRET_LENGTH = 6  # shorter values would mask common words and numbers all over the log
_SECRET_SUFFIXES = ("_KEY", "_SECRET", "_PASSWORD", "_TOKEN")
_CONTAINER_MARKERS = (Path("/.dockerenv"), Path("/run/.containerenv"))  # Docker, Podman
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",  # added in Python 3.12
}


def secret_env_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of env vars whose names mark them as credentials (`*_KEY`, `*_SECRET`,
    `*_PASSWORD`, `*_TOKEN`, `*API_KEY*`; case-insensitive), plus the secret parts of URLs:
    a webhook URL's path and query (`*WEBHOOK*`: Slack's and Discord's tokens live there) and
    the password of any `*_URL` (DATABASE_URL)."""
    env = os.environ if environ is None else environ
    values: list[str] = []
    for name, value in env.items():
        upper = name.upper()
        if upper.endswith(_SECRET_SUFFIXES) or "API_KEY" in upper:
            values.append(value)
        elif "WEBHOOK" in upper or upper.endswith("_URL"):
            values.extend(url_secrets(value, whole="WEBHOOK" in upper))
    return values


def url_secrets(url: str, whole: bool = False) -> list[str]:
    """The credential-bearing parts of a URL: its password (with its delimiters, so a short
    one is still masked where it appears in the URL), and with `whole` the URL itself, its
    path and its query."""
    try:
        parts = urlsplit(url.strip())
        password = parts.password
    except ValueError:  # not a URL (a bad port): mask it all if it is a webhook
        return [url] if whole else []
    found = [f"{parts.username or ''}:{password}@{parts.hostname or ''}", password] if password else []
    if whole:
        found += [url, parts.path, parts.query, parts.path.rstrip("/").rsplit("/", 1)[-1]]
    return [value for value in found if value and value not in ("/",)]


# Credentials recognised by their shape wherever they appear, set in the environment or not
# (e.g. a webhook URL pasted into the strategy file): Slack and Discord webhook paths, Telegram
# bot tokens, Slack tokens.
_SHAPES = re.compile(
    r"(?<=hooks\.slack\.com/services/)[\w/-]+"
    r"|(?<=/api/webhooks/)[\w/.-]+"
    r"|\b\d{6,12}:[A-Za-z0-9_-]{30,}"
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"
)


class Scrubber:
    """Replaces every occurrence of each secret value with `***`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values: set[str] = set()
        for secret in secrets:
            if not isinstance(secret, str):
                continue
            # A value read from a file often carries a trailing newline: mask both forms.
            for value in (secret, secret.strip()):
                if len(value) >= MIN_SECRET_LENGTH:
                    values.add(value)
        # Longest first, so a secret containing another is masked whole.
        ordered = sorted(values, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, value: str) -> str:
        value = self._pattern.sub(MASK, value) if self._pattern is not None else value
        return _SHAPES.sub(MASK, value)

    def tree(self, value: Any) -> Any:
        """The same JSON-able structure with every string (keys too) scrubbed."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k): self.tree(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.tree(v) for v in value]
        return value


def _loggable(value: Any) -> Any:
    """JSON-able form of an extra field; never fails, since a log call must not raise."""
    try:
        return to_jsonable(value, default=str)
    except Exception:  # a cycle, or a __str__ that raises
        try:
            return repr(value)
        except Exception:
            return f"<unprintable {type(value).__name__}>"


def _utc(created: float, millis: bool) -> str:
    when = datetime.fromtimestamp(created, tz=timezone.utc)
    return when.isoformat(timespec="milliseconds" if millis else "seconds").replace("+00:00", "Z")


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:
        # Bad %-args: logging's own error path would print msg and args to stderr unmasked.
        return f"{record.msg!s} (unformattable log arguments: {record.args!r})"


def _exc_type(record: logging.LogRecord) -> str | None:
    if not record.exc_info or record.exc_info[0] is None:
        return None
    cls = record.exc_info[0]
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class _Formatter(logging.Formatter):
    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__()
        self.scrubber = scrubber

    def extras(self, record: logging.LogRecord) -> dict[str, Any]:
        return {
            key: _loggable(value)
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRS and not key.startswith("_")
        }

    def exception(self, record: logging.LogRecord) -> str | None:
        if record.exc_info and record.exc_info[0] is not None:
            # Not record.exc_text: another formatter may have cached it already unmasked
            # or in a different form.
            return "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        return record.exc_text or None


class TextFormatter(_Formatter):
    """`2026-11-25T12:00:00Z INFO trader.engine: message key=value ...`"""

    def format(self, record: logging.LogRecord) -> str:
        # The message's own newlines are escaped so that one record stays one line (and a
        # crafted value cannot forge a log line); only a traceback adds lines.
        message = _one_line(self.scrubber.text(_message(record)))
        parts = [f"{_utc(record.created, millis=False)} {record.levelname} {record.name}: {message}"]
        for key, value in self.scrubber.tree(self.extras(record)).items():
            parts.append(f"{_one_line(key)}={_text_value(value)}")
        line = " ".join(parts)
        exc = self.exception(record)
        if exc:
            line += "\n" + exc
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        # Masked again as a whole: the traceback, and values that quoting above may have
        # escaped into a form the structured pass could not see.
        return self.scrubber.text(line)


class JsonFormatter(_Formatter):
    """One JSON object per line: time, level, logger, message, extras, exc_type, exc."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": _utc(record.created, millis=True),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
        }
        for key, value in self.extras(record).items():
            while key in payload:  # an extra named like a base field must not replace it
                key += "_"
            payload[key] = value
        exc = self.exception(record)
        if exc:
            if (exc_type := _exc_type(record)) is not None:
                payload["exc_type"] = exc_type
            payload["exc"] = exc
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        # Masked before encoding: JSON escaping could split a secret holding '"' or '\'.
        return json.dumps(self.scrubber.tree(payload), allow_nan=False)


def _one_line(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n") if ("\n" in text or "\r" in text) else text


def _text_value(value: Any) -> str:
    if isinstance(value, str):
        if value and not any(c.isspace() or c in '"=\\' for c in value):
            return value
        return json.dumps(value)  # quoted, with newlines escaped
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def parse_level(level: str | int) -> int:
    """A logging level from a name (any case) or number; InputError for anything else."""
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    name = str(level).strip().upper()
    if name.isdigit():
        return int(name)
    levels = logging.getLevelNamesMapping()
    if name in levels:
        return levels[name]
    raise InputError(f"log level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got {level!r}")


def setup_logging(
    json_lines: bool,
    level: str | int = "INFO",
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> logging.Handler:
    """Send every log record to `stream` (default: the current sys.stdout), one per line.

    Secrets are the given values plus those of credential-like env vars, read now. A second
    call replaces the handler installed by the first; other handlers on the root logger
    (pytest's, a library's) are left alone. Returns the installed handler.
    """
    numeric = parse_level(level)
    scrubber = Scrubber([*secrets, *secret_env_values()])
    handler = logging.StreamHandler(sys.stdout if stream is None else stream)
    handler.setFormatter(JsonFormatter(scrubber) if json_lines else TextFormatter(scrubber))
    handler._trader_logs = True  # type: ignore[attr-defined]  # marks ours for the next call
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_trader_logs", False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric)
    return handler


# chatty at INFO (migrations, job runs, HTTP calls): shown with --verbose only
LIBRARY_LOGGERS = ("alembic", "apscheduler", "ccxt", "httpx", "httpcore", "urllib3", "numba", "matplotlib",
                   "anthropic", "asyncio")


def quiet_libraries(verbose: bool = False) -> None:
    """Libraries' loggers at WARNING (their INFO lines drown the daemon's), or all of them with `verbose`."""
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)


def default_json(environ: Mapping[str, str] | None = None) -> bool:
    """The CLI's default for `--log-json`: JSON lines in a container, text on a terminal.

    `TRADER_LOG_JSON=1` (or true/yes/on) forces JSON and `TRADER_LOG_JSON=0` (false/no/off)
    forces text; otherwise JSON when on Railway or inside Docker/Podman.
    """
    env = os.environ if environ is None else environ
    flag = env.get("TRADER_LOG_JSON", "").strip().lower()
    if flag in _TRUE:
        return True
    if flag in _FALSE:
        return False
    if env.get("RAILWAY_ENVIRONMENT") or env.get("RAILWAY_ENVIRONMENT_NAME"):
        return True
    return any(marker.exists() for marker in _CONTAINER_MARKERS)

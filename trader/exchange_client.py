"""The ccxt client under the exchange adapter and the OHLCV downloader: built for spot trading
with our keys, pointed at another base URL when asked (the local exchange), and watched for
what ccxt does not keep (the last HTTP status, the Retry-After header).

No text leaves it with a secret in it: `Scrubber` masks the API key, secret and password (raw
and URL-encoded) and request signatures, and `ScrubbingLogger` puts ccxt's debug log, which
quotes request headers, through it before any handler sees a line."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import ccxt

from trader.errors import ConfigError

MASK = "***"
BINANCE_IDS = frozenset({"binance", "binanceus"})
BINANCE_RECV_WINDOW_MS = 5000
_SIGNATURE = re.compile(r"(signature=)[^&\s'\"]+", re.IGNORECASE)


@dataclass(frozen=True)
class Credentials:
    """Exchange API keys. Never shown by repr() or str()."""

    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    password: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return "Credentials(api_key=***, secret=***" + (", password=***)" if self.password else ")")

    __str__ = __repr__

    def values(self) -> tuple[str, ...]:
        return tuple(v for v in (self.api_key, self.secret, self.password) if v)


def build_client(exchange_id: str, credentials: Credentials | None, timeout_ms: int, *, local: bool) -> Any:
    """A ccxt client for the exchange's spot market; ConfigError for an unknown exchange id."""
    import difflib

    if exchange_id not in ccxt.exchanges:
        close = difflib.get_close_matches(exchange_id, ccxt.exchanges, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; expected a ccxt exchange id like binance or kraken"
        raise ConfigError(f"unknown exchange {exchange_id!r}{hint}")
    options: dict[str, Any] = {"defaultType": "spot"}
    if exchange_id in BINANCE_IDS:
        # Spot only: no futures exchangeInfo at start-up, and no sapi calls (currencies and
        # margin pairs) that need extra key permissions and that a local exchange does not serve.
        options.update({"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False, "fetchCurrencies": False})
        # Binance's own default (ccxt sends 10 s): an order we lost track of is known never
        # to exist that much sooner
        options["recvWindow"] = BINANCE_RECV_WINDOW_MS
    config: dict[str, Any] = {"enableRateLimit": True, "timeout": int(timeout_ms), "options": options}
    if local:
        config["rateLimit"] = 1  # a local exchange has no limits worth waiting for
    if credentials is not None:
        config.update({"apiKey": credentials.api_key, "secret": credentials.secret})
        if credentials.password:
            config["password"] = credentials.password
    return getattr(ccxt, exchange_id)(config)


def point_api_at(client: Any, base_url: str) -> None:
    """Rewrite every urls['api'] entry of a ccxt exchange to base_url, keeping each entry's path."""
    base = base_url.rstrip("/")

    def rewrite(urls: Any) -> Any:
        if isinstance(urls, str):
            return base + urlsplit(urls).path
        if isinstance(urls, dict):
            return {key: rewrite(value) for key, value in urls.items()}
        return urls

    client.urls["api"] = rewrite(client.urls["api"])


class HttpStatus:
    """The HTTP status of a ccxt client's last answer: ccxt does not keep it, and a 5xx with
    an error code ccxt does not know surfaces as a plain ccxt.ExchangeError."""

    def __init__(self, client: Any) -> None:
        self.last: int | None = None
        original = getattr(client, "on_rest_response", None)
        if original is None:  # not a ccxt client (a test's stand-in): no status to keep
            return

        def on_rest_response(code, reason, url, method, response_headers, response_body, *rest):  # type: ignore[no-untyped-def]
            self.last = int(code) if code is not None else None
            return original(code, reason, url, method, response_headers, response_body, *rest)

        client.on_rest_response = on_rest_response

    def server_error(self) -> bool:
        return self.last is not None and self.last >= 500


def retry_after(client: Any) -> float | None:
    """Seconds the last answer's Retry-After header asks us to wait (seconds or an HTTP date)."""
    headers = getattr(client, "last_response_headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # an HTTP date
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None


class Scrubber:
    """Masks secrets (raw and URL-encoded) and request signatures in text."""

    def __init__(self, secrets: list[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if isinstance(secret, str) and len(secret.strip()) >= 4:  # shorter would mask ordinary text
                for value in (secret, secret.strip()):
                    forms.update({value, quote(value, safe=""), quote_plus(value)})
        ordered = sorted(forms, key=len, reverse=True)  # a secret containing another is masked whole
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        return _SIGNATURE.sub(r"\1" + MASK, text)


class ScrubbingLogger(logging.LoggerAdapter):
    """What ccxt logs (request headers included), with secrets masked before any handler sees it."""

    def __init__(self, logger: logging.Logger, scrub: Scrubber) -> None:
        super().__init__(logger, {})
        self._scrub_text = scrub

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = f"{msg} {args!r}"
        kwargs.pop("exc_info", None)  # a traceback could quote the request; the message is enough
        self.logger.log(level, self._scrub_text(text), **kwargs)

"""Telegram: notifications to one chat, and commands from that chat only.

With TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID set, the daemon's notifications (fills, halts,
errors, reviews: what the webhook gets) are sent to the chat, and the bot answers /status,
/profit, /trades, /report (the latest review), /halt and /resume there. Messages from any
other chat are ignored and logged by chat id. Two daemon threads: one long-polls getUpdates,
one sends; neither is ever waited for by a tick, and both back off (1 s doubling to 60 s) while
Telegram cannot be reached. The bot token is part of Telegram's API addresses, so errors are
logged by their class only, never with the URL.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger("trader.telegram")

API = "https://api.telegram.org"
POLL_TIMEOUT = 25  # seconds Telegram holds a getUpdates call open when nothing is new
MAX_BACKOFF = 60.0
QUEUE = 100  # notifications waiting to be sent; the oldest is dropped beyond
LIMIT = 4000  # characters per message (Telegram's limit is 4096)
HELP = "/status /profit /trades /report /halt /resume"


class Answers:
    """What the bot answers, from the ledger (trader.web.data) and the command line's functions."""

    def __init__(self, factory, book: str, config_path: Path | None, data_dir: Path) -> None:
        self.factory, self.book, self.config_path, self.data_dir = factory, book, config_path, data_dir

    def status(self) -> str:
        from trader.web.data import overview

        with self.factory() as s:
            o = overview(s, self.book)
        if o.get("state") == "never started":
            return "the daemon has not ticked yet"
        pos = o["position"]["qty"]
        return (f"{o['symbol']} · {o['state']} · {o['mode']} · version {o['strategy_version']}\n"
                f"equity {_num(o['equity'])} · position {pos:.8g}" + (f" @ {_num(o['position']['entry_price'])}"
                                                                   if pos else "") +
                (f"\nwhy: {o['reason']}" if o.get("reason") else "") +
                (f"\nlast error: {o['last_error']}" if o.get("last_error") else ""))

    def profit(self) -> str:
        from trader.web.data import overview

        with self.factory() as s:
            p = overview(s, self.book).get("pnl")
        if not p:
            return "no trade yet"
        return (f"realised {_num(p['realised'])} · unrealised {_num(p['unrealised'])} · fees {_num(p['fees'])}\n"
                f"total {_num(p['realised'] + p['unrealised'])}")

    def trades(self) -> str:
        from trader.web.data import trades

        with self.factory() as s:
            rows = trades(s, self.book)[:10]
        if not rows:
            return "no trade yet"
        return "\n".join(f"{_when(t['entry_time'])} → {_when(t['exit_time']) or 'open'}: "
                         + ("open" if t["pnl"] is None else f"{_num(t['pnl'])} ({t['ret']:+.2%}), {t['reason']}")
                         for t in rows)

    def report(self) -> str:
        from sqlalchemy import select

        from trader.ledger.models import Review

        with self.factory() as s:
            row = s.scalars(select(Review).order_by(Review.id.desc())).first()
            if row is None:
                return "no review yet"
            return row.report_markdown or f"review #{row.id}: {row.verdict}, {row.decision}"

    def halt(self) -> str:
        from trader.risk import halt

        with self.factory.begin() as s:
            halt(s, self.book, "halted from Telegram", data={"by": "telegram"})
        return "halted: the daemon places no new orders from its next tick"

    def resume(self) -> str:
        from hermes.apply import resume_book

        return resume_book(self.factory, self.config_path, self.data_dir, self.book, datetime.now(timezone.utc),
                           keep=self.config_path is None, reason="resumed from Telegram")


class TelegramBot:
    def __init__(self, token: str, chat_id: str, answers: Answers, *, client: httpx.Client | None = None,
                 api: str = API, sleep: Callable[[float], bool] | None = None) -> None:
        self.chat_id = str(chat_id).strip()
        self.answers = answers
        self.base = f"{api}/bot{token}"
        self.client = client or httpx.Client(timeout=POLL_TIMEOUT + 10, trust_env=False)
        self.stop = threading.Event()
        self.sleep = sleep or self.stop.wait  # True: stop waiting (and stop)
        self.queue: deque[str] = deque(maxlen=QUEUE)
        self.wake = threading.Event()
        self.offset = 0
        self.threads: list[threading.Thread] = []
        self.enabled = True  # NotifyHandler's notifier interface

    @classmethod
    def from_env(cls, environ: Mapping[str, str], answers: Answers, **kwargs: Any) -> TelegramBot | None:
        token, chat = environ.get("TELEGRAM_BOT_TOKEN", "").strip(), environ.get("TELEGRAM_CHAT_ID", "").strip()
        if not token or not chat:
            if token or chat:
                log.warning("Telegram is off: set both TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID")
            return None
        return cls(token, chat, answers, **kwargs)

    # -- notifications (the NotifyHandler side) ---------------------------------------------
    def notify(self, kind: str, message: str, data: Mapping[str, Any] | None = None) -> None:
        self.queue.append(f"{kind}: {message}")
        self.wake.set()

    def send(self, text: str) -> None:
        """One message to the chat (raises on failure: the caller retries)."""
        from trader.ledger import store

        reply = self.client.post(f"{self.base}/sendMessage",
                                 json={"chat_id": self.chat_id, "text": store.scrub(text)[:LIMIT]})
        if reply.status_code >= 500 or reply.status_code == 429:
            raise httpx.HTTPStatusError("retry", request=reply.request, response=reply)
        if reply.status_code >= 400:  # our message is wrong (or the chat id): retrying will not help
            log.warning("Telegram refused a message: HTTP %d", reply.status_code)

    # -- commands (the getUpdates side) -----------------------------------------------------
    def poll_once(self, timeout: int = POLL_TIMEOUT) -> int:
        """One getUpdates call; handles what came; how many updates."""
        reply = self.client.post(f"{self.base}/getUpdates", json={"offset": self.offset, "timeout": timeout},
                                 timeout=timeout + 10)
        reply.raise_for_status()
        updates = reply.json().get("result", [])
        for update in updates:
            self.offset = max(self.offset, int(update.get("update_id", 0)) + 1)
            self.handle(update)
        return len(updates)

    def handle(self, update: Mapping[str, Any]) -> None:
        message = update.get("message") or update.get("edited_message") or {}
        chat = str((message.get("chat") or {}).get("id", ""))
        text = str(message.get("text") or "").strip()
        if not text:
            return
        if chat != self.chat_id:
            log.warning("Telegram: a message from chat %s was ignored (not TELEGRAM_CHAT_ID)", chat[:32],
                        extra={"event": "telegram_ignored"})
            return
        command = text.split()[0].split("@")[0].lower().lstrip("/")
        action = {"status": self.answers.status, "profit": self.answers.profit, "trades": self.answers.trades,
                  "report": self.answers.report, "halt": self.answers.halt, "resume": self.answers.resume,
                  }.get(command)
        try:
            answer = action() if action else f"commands: {HELP}"
        except LookupError as exc:
            answer = str(exc)
        except Exception as exc:  # never the bot's end; the exception's text may carry a key
            log.error("Telegram command /%s failed: %s", command, exc.__class__.__name__)
            answer = f"/{command} failed ({exc.__class__.__name__}); the daemon's log says more"
        self.queue.appendleft(answer)  # an answer before waiting notifications
        self.wake.set()

    # -- threads ------------------------------------------------------------------------------
    def start(self) -> TelegramBot:
        for target, name in ((self._poll_loop, "telegram-poll"), (self._send_loop, "telegram-send")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self.threads.append(thread)
        log.info("Telegram: notifications and commands in chat %s", self.chat_id, extra={"event": "telegram_on"})
        return self

    def _poll_loop(self) -> None:
        self._forever(self.poll_once)

    def _send_loop(self) -> None:
        def drain() -> int:
            while self.queue:
                text = self.queue[0]
                self.send(text)
                if self.queue and self.queue[0] is text:
                    self.queue.popleft()
            self.wake.wait(1.0)
            self.wake.clear()
            return 1

        self._forever(drain)

    def _forever(self, step: Callable[[], int]) -> None:
        backoff = 1.0
        while not self.stop.is_set():
            try:
                step()
                backoff = 1.0
            except Exception as exc:  # network, 5xx, 429, a bad answer: wait and try again
                log.warning("Telegram unreachable (%s); retrying in %.0f s", exc.__class__.__name__, backoff,
                            extra={"event": "telegram_retry"})
                if self.sleep(backoff):
                    return
                backoff = min(backoff * 2, MAX_BACKOFF)

    def close(self, timeout: float = 2.0) -> None:
        self.stop.set()
        self.wake.set()
        for thread in self.threads:
            thread.join(timeout)
        self.client.close()


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:,.2f}"


def _when(t: Any) -> str:
    return "" if t is None else t.strftime("%Y-%m-%d %H:%M")

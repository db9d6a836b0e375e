"""The Telegram bot through an httpx MockTransport (Telegram's API is the only fake): commands
from the configured chat are answered, every other chat is ignored and logged, notifications
are sent, and a failing API is retried without raising."""

from __future__ import annotations

import json
import logging

import httpx

from trader.ledger.models import DaemonState
from trader.telegram import Answers, TelegramBot

from .conftest import start_dash

BOT = "123456:ABC-secret-bot-token"


class FakeTelegram:
    def __init__(self, updates):
        self.updates, self.sent, self.fail = list(updates), [], 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.fail:
            self.fail -= 1
            return httpx.Response(502)
        body = json.loads(request.content or b"{}")
        if request.url.path.endswith("/getUpdates"):
            out, self.updates = [u for u in self.updates if u["update_id"] >= body.get("offset", 0)], []
            return httpx.Response(200, json={"ok": True, "result": out})
        self.sent.append(body)
        return httpx.Response(200, json={"ok": True})


def message(update_id: int, chat: int, text: str) -> dict:
    return {"update_id": update_id, "message": {"chat": {"id": chat}, "text": text}}


def bot_for(tmp_path, fake):
    dash = start_dash(tmp_path)
    answers = Answers(dash.factory, "main", None, tmp_path)
    client = httpx.Client(transport=httpx.MockTransport(fake))
    return dash, TelegramBot(BOT, "42", answers, client=client)


def test_commands_from_the_chat_are_answered_and_others_ignored(tmp_path, caplog):
    fake = FakeTelegram([message(1, 42, "/status"), message(2, 999, "/halt"), message(3, 42, "/halt@mybot"),
                         message(4, 42, "/profit"), message(5, 42, "/report"), message(6, 42, "hello")])
    dash, bot = bot_for(tmp_path, fake)
    try:
        with caplog.at_level(logging.WARNING, "trader.telegram"):
            assert bot.poll_once(timeout=0) == 6
        answers = list(bot.queue)[::-1]  # answers are queued first-in at the front
        assert "running" in answers[0] and "version v1" in answers[0]
        assert answers[1].startswith("halted")
        assert answers[2] == "no trade yet" and answers[3] == "no review yet" and "/status" in answers[4]
        assert "chat 999 was ignored" in caplog.text
        with dash.factory() as s:
            assert s.get(DaemonState, "main").state == "halted"  # by chat 42, not 999
        assert bot.offset == 7
        bot.notify("halted", "drawdown 12%")
        while bot.queue:
            bot.send(bot.queue.pop())
        assert all(m["chat_id"] == "42" for m in fake.sent) and fake.sent[0]["text"] == "halted: drawdown 12%"
        # our own lines never carry it (httpx's request lines do, at INFO: the daemon's log masks
        # every *_TOKEN variable's value, trader.logs)
        assert not any(BOT in r.getMessage() for r in caplog.records if r.name.startswith("trader"))
    finally:
        dash.server.stop()


def test_a_failing_api_is_retried_with_backoff_and_never_raises(tmp_path, caplog):
    fake = FakeTelegram([message(1, 42, "/resume")])
    fake.fail = 3
    dash, bot = bot_for(tmp_path, fake)
    waits = []

    def sleep(seconds: float) -> bool:
        waits.append(seconds)
        return len(waits) >= 3 and not fake.fail and bool(bot.queue)  # stop once the update came through

    bot.sleep = sleep
    try:
        with dash.factory.begin() as s:
            s.get(DaemonState, "main").state = "halted"
        with caplog.at_level(logging.WARNING, "trader.telegram"):
            bot._forever(lambda: bot.poll_once(timeout=0) or (_ for _ in ()).throw(RuntimeError("idle")))
        assert waits[:3] == [1.0, 2.0, 4.0]
        assert "resumed" in bot.queue[0]
        assert "HTTPStatusError" in caplog.text
        assert not any(BOT in r.getMessage() for r in caplog.records if r.name.startswith("trader"))
    finally:
        dash.server.stop()


def test_without_both_variables_there_is_no_bot(tmp_path):
    answers = Answers(None, "main", None, tmp_path)
    assert TelegramBot.from_env({}, answers) is None
    assert TelegramBot.from_env({"TELEGRAM_BOT_TOKEN": BOT}, answers) is None

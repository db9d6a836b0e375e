"""setup_logging: line formats, extra fields, secret masking, idempotent setup, default_json."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from trader import logs
from trader.errors import InputError
from trader.logs import default_json, setup_logging

SECRET = "s3cr3t-api-value-XYZ"
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc).timestamp()


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    """setup_logging changes the process-wide root logger: put it back after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(autouse=True)
def no_credential_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The machine's own credential-like variables would otherwise join the secret list.
    for name in list(os.environ):
        if name.upper().endswith(logs._SECRET_SUFFIXES) or "API_KEY" in name.upper():
            monkeypatch.delenv(name)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("trader.engine", logging.INFO, __file__, 1, message, args or None, None)
    rec.created = NOON
    rec.__dict__.update(extra)
    return rec


def test_text_line_format() -> None:
    handler = setup_logging(json_lines=False, stream=io.StringIO())
    line = handler.format(record("order %s filled", "b-1", event="order_filled", qty=1.2, note="two words"))
    assert line == '2026-11-25T12:00:00Z INFO trader.engine: order b-1 filled event=order_filled qty=1.2 note="two words"'


def test_text_through_a_logger() -> None:
    out = io.StringIO()
    setup_logging(json_lines=False, level="debug", stream=out)
    log = logging.getLogger("trader.engine")
    log.debug("tick", extra={"bar": datetime(2026, 11, 25, 12, tzinfo=timezone.utc), "ok": True, "missing": None})
    log.warning("line one\nINFO forged: line two")
    [tick, warning] = lines(out)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ DEBUG trader.engine: tick bar=2026-11-25T12:00:00Z ok=true missing=null",
        tick,
    )
    assert warning.endswith("WARNING trader.engine: line one\\nINFO forged: line two")  # still one line


def test_text_exception_appends_the_traceback() -> None:
    out = io.StringIO()
    setup_logging(json_lines=False, stream=out)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("trader.engine").exception("tick failed", extra={"event": "tick_error"})
    first, *rest = lines(out)
    assert first.endswith("ERROR trader.engine: tick failed event=tick_error")
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ValueError: boom"


def test_json_line_format_and_extras() -> None:
    out = io.StringIO()
    setup_logging(json_lines=True, stream=out)
    logging.getLogger("trader.engine").info(
        "order filled", extra={"event": "order_filled", "qty": 1.2, "pnl": float("nan"), "time": "shadowed"}
    )
    [line] = lines(out)
    data = json.loads(line)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", data.pop("time"))
    assert data == {
        "level": "INFO",
        "logger": "trader.engine",
        "message": "order filled",
        "event": "order_filled",
        "qty": 1.2,
        "pnl": None,
        "time_": "shadowed",  # an extra never replaces a base field
    }


def test_json_exact_time() -> None:
    handler = setup_logging(json_lines=True, stream=io.StringIO())
    assert json.loads(handler.format(record("x")))["time"] == "2026-11-25T12:00:00.000Z"


def test_json_exception_is_one_line() -> None:
    out = io.StringIO()
    setup_logging(json_lines=True, stream=out)
    try:
        raise InputError("bad file")
    except InputError:
        logging.getLogger("trader.cli").exception("failed")
    [line] = lines(out)
    data = json.loads(line)
    assert data["exc_type"] == "trader.errors.InputError"
    assert data["exc"].startswith("Traceback (most recent call last):")
    assert data["exc"].endswith("trader.errors.InputError: bad file")


@pytest.mark.parametrize("json_lines", [False, True])
def test_secret_argument_is_masked_everywhere(json_lines: bool) -> None:
    out = io.StringIO()
    setup_logging(json_lines=json_lines, stream=out, secrets=[SECRET, "short"])
    log = logging.getLogger("trader.broker")
    log.info("key is %s", SECRET, extra={"config": {"apiKey": SECRET, "list": [f"x{SECRET}x"]}, "q": f'"{SECRET}"'})
    try:
        raise RuntimeError(f"401 for key={SECRET}")
    except RuntimeError:
        log.exception("rejected")
    text = out.getvalue()
    assert SECRET not in text
    assert "***" in text
    if json_lines:
        first, second = (json.loads(line) for line in lines(out))
        assert first["message"] == "key is ***"
        assert first["config"] == {"apiKey": "***", "list": ["x***x"]}
        assert first["q"] == '"***"'
        assert second["exc"].endswith("RuntimeError: 401 for key=***")
    else:
        assert "key is *** config=" in text
        assert "RuntimeError: 401 for key=***" in text


def test_secret_env_vars_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "BINANCE_API_SECRET": "env-secret-111111",
        "EXCHANGE_KEY": "env-key-2222222",
        "DB_PASSWORD": "env-pass-3333333",
        "ANTHROPIC_API_KEY": "env-anthropic-444444",
        "MY_API_KEY_ID": "env-keyid-555555",
        "GITHUB_TOKEN": "abc",  # shorter than 6: ignored
        "NOT_A_CREDENTIAL": "visible-666666",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    setup_logging(json_lines=True, stream=out)
    log = logging.getLogger("trader.settings")
    log.info("loaded %s", " ".join(env.values()), extra={"values": list(env.values())})
    try:
        raise ConnectionError(env["ANTHROPIC_API_KEY"])
    except ConnectionError:
        log.exception("failed")
    text = out.getvalue()
    for name in ("BINANCE_API_SECRET", "EXCHANGE_KEY", "DB_PASSWORD", "ANTHROPIC_API_KEY", "MY_API_KEY_ID"):
        assert env[name] not in text, name
    first, second = (json.loads(line) for line in lines(out))
    assert first["message"] == "loaded *** *** *** *** *** abc visible-666666"
    assert first["values"] == ["***"] * 5 + ["abc", "visible-666666"]
    assert second["exc"].endswith("ConnectionError: ***")


def test_env_is_read_at_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    setup_logging(json_lines=False, stream=out)
    monkeypatch.setenv("LATE_TOKEN", "late-token-value")
    logging.getLogger("t").warning("late-token-value")
    assert "late-token-value" in out.getvalue()  # set after setup: not known
    setup_logging(json_lines=False, stream=out)
    logging.getLogger("t").warning("late-token-value")
    assert lines(out)[-1].endswith("t: ***")


def test_a_secret_containing_another_is_masked_whole() -> None:
    out = io.StringIO()
    setup_logging(json_lines=False, stream=out, secrets=["abcdef", "abcdefghijkl"])
    logging.getLogger("t").warning("abcdefghijkl")
    assert lines(out)[-1].endswith("t: ***")


def test_setup_twice_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    setup_logging(json_lines=False, stream=first)
    setup_logging(json_lines=True, stream=second)
    logging.getLogger("trader.engine").info("once")
    assert first.getvalue() == ""
    assert len(lines(second)) == 1 and json.loads(lines(second)[0])["message"] == "once"
    setup_logging(json_lines=True, stream=second)
    logging.getLogger("trader.engine").info("twice")
    assert len(lines(second)) == 2


def test_level() -> None:
    out = io.StringIO()
    setup_logging(json_lines=False, level="warning", stream=out)
    logging.getLogger("t").info("hidden")
    logging.getLogger("t").warning("shown")
    assert len(lines(out)) == 1
    with pytest.raises(InputError, match="log level must be one of .* got 'LOUD'"):
        setup_logging(json_lines=False, level="LOUD", stream=out)


def test_default_stream_is_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(json_lines=False)
    logging.getLogger("t").info("to stdout")
    assert capsys.readouterr().out.endswith("INFO t: to stdout\n")


def test_default_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    marker = tmp_path / ".dockerenv"
    monkeypatch.setattr(logs, "_CONTAINER_MARKERS", (marker,))
    assert default_json({}) is False
    assert default_json({"RAILWAY_ENVIRONMENT": "production"}) is True
    assert default_json({"TRADER_LOG_JSON": "1"}) is True
    marker.touch()
    assert default_json({}) is True
    assert default_json({"TRADER_LOG_JSON": "0"}) is False  # explicit text wins

"""Every credential-bearing setting is scrubbed like the API keys (issue 12, item 6): the
webhook URL's secret path (httpx's own INFO log line of each delivery included), chat tokens
and a DATABASE_URL password, in the log, the events table, the strategy versions and
/status, also when the URL is pasted into the strategy file."""

from __future__ import annotations

import io
import json
import logging

import pytest
from sqlalchemy import create_engine, inspect, select, table, column

from tests.trader.test_notify import hook  # noqa: F401  (fixture: a real webhook server)
from trader.logs import setup_logging
from trader.notify import Notifier

from . import mutations as M

PATH_TOKEN = "XwQ9rT2vLp8sKd4Hj6Mn"  # Slack's and Discord's webhook token sits in the URL path
TELEGRAM = "7391045521:AAFq2Yw8Rk3Lm5Np7Tb9Vc1Xz4Hd6Gj8Ks0"
DB_PASSWORD = "pg-Pw7Zr2Ht"


@pytest.fixture
def log(monkeypatch):
    stream = io.StringIO()
    handler = setup_logging(json_lines=True, level="DEBUG", stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def test_httpx_logs_of_webhook_deliveries_hide_the_secret_path(hook, monkeypatch):  # noqa: F811
    url = f"{hook.url}/services/T0A1B2/B3C4D5/{PATH_TOKEN}"
    monkeypatch.setenv("TRADER_WEBHOOK_URL", url)
    stream = io.StringIO()
    handler = setup_logging(json_lines=False, level="INFO", stream=stream)
    logging.getLogger("httpx").setLevel(logging.INFO)  # whatever the default: shown, then masked
    try:
        notifier = Notifier.from_env()
        notifier.notify("fill", "buy 0.1 BTC/USDT")
        assert notifier.flush(5)
        notifier.close()
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger("httpx").setLevel(logging.NOTSET)
    assert len(hook.requests) == 1
    assert PATH_TOKEN not in stream.getvalue()


@pytest.mark.parametrize("password", [DB_PASSWORD, "abc"])
def test_a_database_url_password_is_masked_in_logs(password, log, monkeypatch):
    url = f"postgresql://trader:{password}@db.internal:5432/ledger"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("TRADER_TELEGRAM_TOKEN", TELEGRAM)
    setup_logging(json_lines=True, level="INFO", stream=log)
    logging.getLogger("trader.test").error("cannot connect to %s with %s", url, TELEGRAM)
    out = log.getvalue()
    assert f":{password}@" not in out and TELEGRAM not in out


def test_known_token_shapes_are_masked_even_when_not_configured(log):
    logging.getLogger("trader.test").warning(
        "pasted https://hooks.slack.com/services/T0/B0/%s and https://discord.com/api/webhooks/1/%s and %s",
        PATH_TOKEN, PATH_TOKEN, TELEGRAM)
    out = log.getvalue()
    assert PATH_TOKEN not in out and TELEGRAM not in out


def test_a_webhook_url_pasted_into_the_strategy_file_is_masked_everywhere(btc, tmp_path, monkeypatch):
    from tests.trader.test_service import make_service, now_candles
    from trader.localexchange import LocalExchange
    from trader.status import snapshot

    url = f"https://hooks.example.net/notify/{PATH_TOKEN}"  # a generic webhook: no known shape
    monkeypatch.setenv("TRADER_WEBHOOK_URL", url)
    strategy = tmp_path / "strategy.yaml"
    good = M.STRATEGY_FILE.read_text().replace("exchange: coinbase", "exchange: binance") \
        .replace("symbol: BTC/USD", "symbol: BTC/USDT")
    strategy.write_text(good)
    with LocalExchange(now_candles(btc, 700), symbol="BTC/USDT", balances={"USDT": 10_000.0}) as exchange:
        service = make_service(exchange, strategy, tmp_path)
        strategy.write_text(good.replace("\nname: ", f"\nname: {json.dumps(url)}\n#"))  # a credential: refused
        service.tick()
        strategy.write_text(good.replace("capital: 10000", f"capital: 20000  # see {url}"))  # kept, masked
        service.tick()
        strategy.write_text(good.replace("\nname: ", f"\nname: {json.dumps(url * 3)}\n#"))  # too long: rejected
        service.tick()
        with service.factory() as s:
            status = json.dumps(snapshot(s, "main"), default=str)
    assert PATH_TOKEN not in status
    engine = create_engine(f"sqlite:///{tmp_path / 'trader.db'}")
    with engine.connect() as connection:
        kinds = [row[0] for row in connection.execute(select(column("kind")).select_from(table("events")))]
        assert "config_changed" in kinds and "config_rejected" in kinds
        for name in inspect(engine).get_table_names():
            for row in connection.execute(select(table(name, *[column(c["name"]) for c in
                                                               inspect(engine).get_columns(name)]))):
                assert PATH_TOKEN not in repr(row), name

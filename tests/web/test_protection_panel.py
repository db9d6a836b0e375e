"""The dashboard says which protection guards the position, in the very sentence `trader
status` prints (both read trader.protection_status): a live position on the local exchange
with its stop and take-profit resting as one OCO list, the JSON the page reads, the page itself
in a real headless Chromium, and the sentence for each other kind of protection."""

from __future__ import annotations

import re
import shutil

import httpx
import pytest

from trader.config import parse_strategy_config
from trader.localexchange import LocalExchange
from trader.protection import InForce
from trader.protection_status import summary
from trader.status import snapshot
from trader.web import Site, serve

from ..trader.liverig import Rig

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def protected(btc, config, tmp_path_factory):
    """A live book holding a position guarded by an OCO list on the local exchange, served."""
    data = config.to_dict()
    data.update(exchange="binance", symbol="BTC/USDT", capital=10_000.0)
    data["params"].update(fast=20, slow=100)
    data["risk"].update(stop_loss=0.02, take_profit=0.03)
    tmp = tmp_path_factory.mktemp("protected")
    url = f"sqlite:///{tmp / 'trader.db'}"
    with LocalExchange(btc.iloc[:400], symbol="BTC/USDT", balances={"USDT": 10_000.0}) as ex:
        rig = Rig(ex, parse_strategy_config(data, "<oco>"), url)
        i = 100
        while True:
            with rig.factory() as s:
                if snapshot(s, "main")["protection"]["in_force"] == InForce.EXCHANGE_OCO:
                    break
            rig.step(i)
            i += 1

    def status():
        with rig.factory() as s:
            return snapshot(s, "main")

    server = serve(Site(status, lambda: (True, "ok"), rig.factory, "main", None, tmp), port=0, host="127.0.0.1")
    yield server.url, url, status()["protection"]
    server.stop()


def test_the_page_json_and_trader_status_give_one_sentence(protected, monkeypatch, capsys):
    from trader.cli import main

    site, url, guard = protected
    sentence = guard["summary"]
    assert re.fullmatch(rf"stop [\d,.]+ and take-profit [\d,.]+ rest on the exchange as one OCO list "
                        rf"\(orders {guard['order']}, {guard['take_profit_order']}\)", sentence), sentence
    assert f"{guard['stop_price']:,.2f}" in sentence and f"{guard['take_profit_price']:,.2f}" in sentence
    with httpx.Client(base_url=site, timeout=10, trust_env=False) as c:
        assert c.get("/api/status").json()["protection"] == guard  # what the page renders
        assert c.get("/status").json()["protection"]["summary"] == sentence
        page = c.get("/").text
        assert 'id="protection"' in page and "renderProtection" in c.get("/static/app.js").text
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("COLUMNS", "400")  # one table row, unwrapped
    assert main(["status"]) == 0
    assert sentence in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no system Chromium (apt-get install chromium; .ci/run does)")
def test_the_protection_panel_in_a_browser(protected):
    from playwright.sync_api import sync_playwright

    site, _, guard = protected
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(bypass_csp=True)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(site + "/")
        page.wait_for_function("document.querySelector('#protection').textContent !== '–'")
        assert page.text_content("#protection") == guard["summary"]
        assert page.text_content("#protection-kind") == "exchange oco"
        assert errors == []
        browser.close()


def _fields(kind, **kw):
    found = {"in_force": kind, "stop_price": 61234.0, "order": "ht-main-x-p", "take_profit": None,
             "take_profit_price": None, "take_profit_order": None, "watch_seconds": None, "stop_refused": False}
    return {**found, **kw}


@pytest.mark.parametrize("fields, qty, sentence", [
    (_fields("exchange_stop", take_profit="candle_close", take_profit_price=70100.0), 0.1,
     "stop 61,234.00 rests on the exchange (order ht-main-x-p); take-profit 70,100.00 checked at each candle close"),
    (_fields("candle_close", order=None, watch_seconds=5), 0.1,
     "stop 61,234.00 watched by the daemon: the price every 5 s and each candle's range; "
     "no stop order rests on the exchange"),
    (_fields("candle_close", order=None, watch_seconds=5, stop_refused=True), 0.1,
     "stop 61,234.00 watched by the daemon: the price every 5 s and each candle's range; "
     "the exchange refused the stop order (tried again next tick)"),
    (_fields("candle_close", order=None), 0.1, "stop 61,234.00 checked at each candle close (paper)"),
    (_fields("none", stop_price=None, order=None), 0.0, "none: flat"),
    (_fields("none", stop_price=None, order=None), 0.1, "none: no stop-loss configured"),
])
def test_each_kind_of_protection_has_its_sentence(fields, qty, sentence):
    assert summary(fields, qty) == sentence

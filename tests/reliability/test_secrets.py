"""Secrets: the exchange keys and the Anthropic key come only from the environment and
appear nowhere else. A full session runs with recognisable key values: the live daemon
trading against the local exchange (which echoes the keys back in its error bodies), its
/status and /health, `trader status`, a halt whose reason quotes the exchange, and a Hermes
review whose model endpoint echoes the key in its 401. Then every output is searched: stdout
and stderr of every command, the HTTP answers, every column of every ledger table, and every
file under the data directory (the database and its WAL included, byte for byte)."""

from __future__ import annotations

import json
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, quote_plus

import httpx
import pytest
from sqlalchemy import create_engine, inspect, select, table, column

from trader.ledger import store
from trader.localexchange import faults

from . import harness as H

ANTHROPIC_KEY = "sk-ant-RELIABILITY-Qz8Xv3Lk5Tn2Wm7Ye4"
SECRETS = (H.KEY, H.SECRET, ANTHROPIC_KEY)
DATA = H.ROOT / "tests" / "data" / "btcusd-1h.csv"


class EchoingModel:
    """A stand-in for the Anthropic API that answers 401 and quotes the key it was sent."""

    def __init__(self) -> None:
        self.keys_seen: list[str] = []
        model = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get("x-api-key") or self.headers.get("authorization", "").removeprefix("Bearer ")
                model.keys_seen.append(key)
                body = json.dumps({"type": "error", "error": {"type": "authentication_error",
                                                              "message": f"invalid x-api-key: {key}"}}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote_plus(secret)}


def leaks(where: str, text: str | bytes) -> list[str]:
    found = []
    for secret in SECRETS:
        for form in forms(secret):
            needle = form.encode() if isinstance(text, bytes) else form
            if needle in text:
                found.append(f"{secret[:10]}... in {where}")
    return found


def ledger_text(url: str) -> tuple[dict[str, str], int]:
    """Every value of every column of every table, as text (JSON columns as JSON)."""
    engine = create_engine(url)
    out, columns = {}, 0
    try:
        names = inspect(engine).get_table_names()
        with engine.connect() as connection:
            for name in names:
                cols = [c["name"] for c in inspect(engine).get_columns(name)]
                columns += len(cols)
                rows = connection.execute(select(*[column(c) for c in cols]).select_from(table(name))).all()
                out[name] = json.dumps([[str(v) for v in row] for row in rows], ensure_ascii=False)
    finally:
        engine.dispose()
    return out, columns


@pytest.mark.long  # a whole live session, then Hermes: about 15 s
def test_no_secret_in_any_output(tmp_path):
    model = EchoingModel()
    world = H.LiveWorld(tmp_path / "data", seed=5,
                        extra_env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_BASE_URL": model.url})
    outputs: dict[str, str | bytes] = {"approve": world.approval.stdout + world.approval.stderr}
    exchange, env = world.exchange, world.env
    daemon = world.daemon(goals=H.ROOT / "config" / "goals.yaml")
    status_url = f"http://127.0.0.1:{world.port}"
    try:
        assert daemon.wait_event("started", timeout=90), daemon.stderr()
        assert daemon.wait_event("order_filled", timeout=60), daemon.stderr()
        # the exchange quotes the keys back in its errors: an order refused, a 503, then a halt
        mark = daemon.mark()
        exchange.inject("POST /api/v3/order", faults.http_error(
            400, -1013, f"Filter failure: LOT_SIZE for key {H.KEY} and secret {H.SECRET}"))
        assert daemon.wait_event("order_rejected", after=mark, timeout=60), daemon.stderr()
        mark = daemon.mark()
        exchange.inject("GET /api/v3/klines", faults.http_error(
            503, -1001, f"Internal error; unable to process your request for {H.KEY}/{H.SECRET}."))
        assert daemon.wait_event("retry", after=mark, timeout=60)
        assert daemon.wait_event("tick", after=mark, timeout=60, count=2)

        def cli(args):
            done = H.trader(args, env)
            return f"trader {' '.join(args)} (rc {done.returncode})", done.stdout + done.stderr

        with ThreadPoolExecutor(max_workers=2) as pool:
            outputs.update(pool.map(cli, [["status", "--json"], ["status"]]))
        for path in ("/status", "/health"):
            outputs[f"GET {path}"] = httpx.get(status_url + path, timeout=10).text
        json.loads(outputs["trader status --json (rc 0)"])  # it answered

        mark = daemon.mark()
        exchange.inject("GET /api/v3/klines", faults.http_error(  # an error ccxt does not know: a halt
            400, -1999, f"Unexpected trouble for API-key {H.KEY} (secret {H.SECRET})."))
        assert daemon.wait_event("halted", after=mark, timeout=60)
        outputs["GET /status (halted)"] = httpx.get(status_url + "/status", timeout=10).text
        outputs.update([cli(["status", "--json"])])
        assert daemon.stop() == 0
    finally:
        world.close()
    outputs["daemon stdout"] = daemon.stdout_path.read_text(encoding="utf-8")
    outputs["daemon stderr"] = daemon.stderr()

    # Hermes, with the model answering 401 and quoting the key: it falls back to the rules
    review_config = tmp_path / "review-strategy.yaml"
    review_config.write_text((H.ROOT / "config" / "strategy.yaml").read_text()
                             .replace("exchange: coinbase", "exchange: binance").replace("BTC/USD", "BTC/USDT"))
    answers = {}
    for args in (["review", "--config", str(review_config), "--goals", str(H.ROOT / "config" / "goals.yaml"),
                  "--data", str(DATA), "--now", "2017-11-03T00:00", "--json"], ["history", "--json"]):
        done = subprocess.run([H.PYTHON, "-m", "hermes.cli", *args], cwd=H.ROOT, env=env, capture_output=True,
                              text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        outputs[f"hermes {args[0]}"] = done.stdout + done.stderr
        answers[args[0]] = json.loads(done.stdout)
    model.close()
    assert model.keys_seen and set(model.keys_seen) == {ANTHROPIC_KEY}  # the key was used, and only sent there
    assert answers["review"]["proposal"]["chosen_by"] == "rules"  # the rule-based path ran

    # the search (which does find them where they belong: the daemon's environment)
    assert len(leaks("environment", json.dumps(env))) >= 2
    found: list[str] = []
    for where, text in outputs.items():
        found += leaks(where, text)
    tables, columns = ledger_text(world.url)
    for name, text in tables.items():
        found += leaks(f"ledger table {name}", text)
    files = [p for p in world.dir.rglob("*") if p.is_file()]
    for path in files:
        found += leaks(f"file {path.relative_to(world.dir)}", path.read_bytes())
    assert found == []
    # and the search had something to search
    assert columns > 60 and {"orders", "fills", "events", "daemon_state", "reviews"} <= set(tables)
    assert any(p.suffix == ".md" for p in files) and any(p.name == "trader.db" for p in files)
    assert "***" in outputs["daemon stdout"]  # the echoed keys were there, masked
    assert json.loads(outputs["GET /status (halted)"])["state"] == "halted"



def test_a_key_pasted_into_the_strategy_file_while_running_stays_out_of_the_ledger(btc, tmp_path):
    """Keys belong in the environment only. A user who pastes one into the strategy file
    while the daemon runs gets the edit refused; the key must not be stored or shown."""
    from trader.status import snapshot

    exchange = H.timed_exchange(btc.iloc[:300])
    config = tmp_path / "strategy.yaml"
    config.write_text(H.strategy_yaml("1h", fast=3, slow=12))
    svc = H.DrivenService(exchange.base_url, exchange.clock.set, config, tmp_path)
    try:
        svc.tick_at(exchange.candles.open_time(50))
        config.write_text(config.read_text().replace("exchange: binance\n",
                                                     f"exchange: {{id: binance, secret: {H.SECRET}}}\n"))
        svc.tick_at(exchange.candles.open_time(51))  # the edit is noticed and refused
        with svc.service.factory() as s:
            status = json.dumps(snapshot(s, "main"), default=str)
            kinds = [e.kind for e in s.query(store.Event)]
        state = svc.state()[0]
    finally:
        svc.close()
        exchange.stop()
    assert "config_rejected" in kinds and state == "running"
    tables, _ = ledger_text(svc.url)
    found = leaks("/status", status) + [f for name, text in tables.items() for f in leaks(name, text)]
    assert found == []

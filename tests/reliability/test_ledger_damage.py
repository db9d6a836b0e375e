"""A damaged ledger (issue 12, item 7): garbage written into trader.db and its WAL under a
running daemon halts it with the reason on /health and /status, a copy of the damaged files
is kept aside, nothing is traded on it, and every command afterwards says so in one line with
exit 2; `trader backup` makes a checked copy that restores."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from . import harness as H


def get(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_health(port: int, match, timeout: float = 30.0) -> tuple[int, dict] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            code, body = get(port, "/health")
            if match(code, body):
                return code, body
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    return None


def scribble(path, start: int, seed: int) -> None:
    """Garbage over the file from `start` on, in place, as a disk or a stray process would."""
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.seek(start)
        handle.write(os.urandom(max(size - start, 4096)) if seed else b"\xff" * max(size - start, 4096))


def run_all(commands: list[list[str]], env: dict) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen([H.PYTHON, "-m", "trader.cli", *args], cwd=H.ROOT, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for args in commands]
    done = []
    for args, proc in zip(commands, procs):
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
        done.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return done


@pytest.mark.slow  # the real daemon and six commands after it: 14 s
def test_garbage_in_the_ledger_under_a_running_daemon_halts_it_and_every_command_says_so(tmp_path):
    H.enable_one_second_candles()
    exchange = H.timed_exchange(H.realtime_candles(seed=21, future=600))
    exchange.follow_wall_clock()
    config = tmp_path / "strategy.yaml"
    config.write_text(H.strategy_yaml())
    port = H.free_port()
    env = H.clean_env(TRADER_EXCHANGE_URL=exchange.base_url, TRADER_DATA_DIR=str(tmp_path), PORT=str(port))
    db = tmp_path / "trader.db"
    daemon = H.Daemon(config, env, tmp_path / "logs", live=False)
    try:
        assert wait_health(port, lambda code, _: code == 200, timeout=60), daemon.stderr()[-2000:]
        assert daemon.wait_event("order_filled", timeout=30), "the daemon never traded before the damage"
        scribble(db, 4096, seed=1)  # every page but the first
        scribble(tmp_path / "trader.db-wal", 32, seed=1)  # every frame, the WAL header kept
        damaged = wait_health(port, lambda code, body: code == 503 and "damaged" in body["reason"], timeout=20)
        halted_at = daemon.mark()
        assert damaged is not None, (get(port, "/health"), daemon.stderr()[-2000:])
        assert damaged[1]["reason"].startswith(f"halted: the ledger {db} is damaged")
        assert "trader backup" in damaged[1]["reason"]  # how to restore
        code, status = get(port, "/status")
        assert code == 200 and status["state"] == "halted" and "damaged" in status["reason"]
        assert status["ledger"]["damaged"] is True and status["ledger"]["writable"] is False
        kept = tmp_path / "damaged"
        copies = list(kept.iterdir())
        assert len(copies) == 1 and (copies[0] / "trader.db").stat().st_size > 0
        assert status["ledger"]["damaged_copy"] == str(copies[0])
        time.sleep(3)  # three more candles: nothing is decided or traded on the damaged ledger
        after = [r.get("event") for r in daemon.records[halted_at:]]
        assert not {"tick", "order_intent", "order_filled"} & set(after), after
        assert get(port, "/health")[0] == 503
        assert daemon.stop() == 0
    finally:
        if daemon.alive():
            daemon.kill9()
        exchange.stop()
    assert "Traceback" not in daemon.stderr(), daemon.stderr()[-3000:]
    assert db.exists() and db.stat().st_size > 0  # the damaged file stays where it was
    commands = [["status"], ["status", "--json"], ["trades"], ["halt"], ["backup"],
                ["run", "--config", str(config), "--settle", "0"]]
    for done in run_all(commands, {**env, "TRADER_EXCHANGE_URL": "http://127.0.0.1:9"}):
        assert done.returncode == 2, (done.args, done.returncode, done.stderr[-2000:])
        assert "Traceback" not in done.stdout + done.stderr, (done.args, done.stderr[-3000:])
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: the ledger {db} is damaged"), (done.args, lines)


def test_the_daemons_tick_halts_on_a_damaged_ledger_and_trades_nothing(btc, tmp_path):
    """The same, in-process on a driven clock (the live broker, the local exchange): the tick
    that meets the garbage halts the daemon for good; the exchange sees no order after it."""
    exchange = H.timed_exchange(btc.iloc[:200])
    config = tmp_path / "strategy.yaml"
    config.write_text(H.strategy_yaml("1h", fast=2, slow=5))
    svc = H.DrivenService(exchange.base_url, exchange.clock.set, config, tmp_path)
    try:
        for i in range(20, 60):
            svc.tick_at(exchange.candles.open_time(i))
        assert exchange.orders and svc.service.ledger.damaged is None
        orders = len(exchange.orders)
        scribble(tmp_path / "trader.db", 4096, seed=1)
        scribble(tmp_path / "trader.db-wal", 32, seed=1)
        for i in range(60, 100):
            svc.tick_at(exchange.candles.open_time(i))
        guard = svc.service.ledger
        assert guard.damaged is not None and "is damaged" in guard.damaged, guard.write_error
        assert len(exchange.orders) == orders  # nothing traded on it
        assert (guard.kept / "trader.db").exists() and (tmp_path / "trader.db").exists()
        ok, reason = guard.health(lambda: (True, "last tick 1 s ago"))()
        status = guard.status(lambda: {"book": "main", "state": "running"}, "main")()
        assert not ok and reason.startswith("halted: the ledger") and status["state"] == "halted"
    finally:
        svc.close()
        exchange.stop()


def test_a_ledger_that_is_not_a_database_is_refused_by_every_command(tmp_path):
    (tmp_path / "trader.db").write_bytes(b"garbage " * 1000)
    env = H.clean_env(TRADER_DATA_DIR=str(tmp_path))
    for done in run_all([["status"], ["report"], ["resume"]], env):
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert done.stderr.startswith(f"error: the ledger {tmp_path / 'trader.db'} is damaged (file is not a database)")


def _ledger_with_rows(path, rows: int = 200):
    from trader.ledger import open_ledger, sessions, store
    from trader.ledger.models import DaemonState

    ledger = open_ledger(f"sqlite:///{path}")
    with sessions(ledger).begin() as s:
        s.add(DaemonState(book="main", state="running", mode="paper"))
        for i in range(rows):
            store.record_event(s, "note", f"event {i}", "main")
    return ledger


def test_backup_while_the_ledger_is_written_restores_and_checks(tmp_path):
    from sqlalchemy import text

    from trader.ledger.damage import backup, quick_check

    ledger = _ledger_with_rows(tmp_path / "trader.db")
    with ledger.begin() as c:  # a write the checkpoint has not moved into the file yet
        c.execute(text("insert into events (time, kind, message, book) values ('2024-01-01', 'note', 'last', 'main')"))
    copy = backup(f"sqlite:///{tmp_path / 'trader.db'}", tmp_path / "backups" / "copy.db")
    ledger.dispose()
    assert quick_check(copy) is None and not (tmp_path / "backups" / "copy.db-wal").exists()
    with sqlite3.connect(copy) as restored:
        assert restored.execute("select count(*) from events").fetchone() == (201,)
    # through the CLI: the default path, and a second copy beside it
    env = H.clean_env(TRADER_DATA_DIR=str(tmp_path))
    done = H.trader(["backup", "--to", str(tmp_path / "b2.db")], env)
    assert done.returncode == 0 and "ledger backed up to" in done.stdout and quick_check(tmp_path / "b2.db") is None


def test_backup_refuses_a_damaged_ledger_and_postgresql_with_what_to_do(tmp_path):
    from trader.errors import InputError
    from trader.ledger.damage import LedgerDamaged, backup

    _ledger_with_rows(tmp_path / "trader.db").dispose()
    scribble(tmp_path / "trader.db", 4096, seed=0)
    with pytest.raises(LedgerDamaged, match="is damaged"):
        backup(f"sqlite:///{tmp_path / 'trader.db'}", tmp_path / "copy.db")
    assert not (tmp_path / "copy.db").exists()
    with pytest.raises(InputError, match="pg_dump.*Railway"):
        backup("postgresql+psycopg://u:pw@localhost/trader", tmp_path / "copy.db")

"""The daemon's commands as a user runs them: the live gate, halt and resume, status, replay."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from ..conftest import BTC_1H, ROOT, STRATEGY_YAML

KEYS = {"EXCHANGE_API_KEY": "live-key-Zq8u2XkP", "EXCHANGE_API_SECRET": "live-secret-Jr5vN1wQ"}


def trader(*args, env=None, data_dir=None, stdin=None, timeout=120):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("EXCHANGE_", "DATABASE_URL"))}
    environ["TRADER_DATA_DIR"] = str(data_dir)
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "trader.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, env=environ, timeout=timeout, input=stdin)


def test_live_is_refused_without_keys_and_approval(tmp_path):
    done = trader("run", "--live", "--config", STRATEGY_YAML, data_dir=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "EXCHANGE_API_KEY" in done.stderr and "has not been approved" in done.stderr
    assert "nothing was traded" in done.stderr


def test_live_is_refused_after_the_file_was_edited(tmp_path):
    approved = trader("approve", "--live", "--yes", "--config", STRATEGY_YAML, data_dir=tmp_path)
    assert approved.returncode == 0, approved.stderr
    assert "LIVE trading approval" in approved.stdout and "stop-loss 5.0%" in approved.stdout
    edited = tmp_path / "strategy.yaml"
    edited.write_text(STRATEGY_YAML.read_text().replace("fast: 20", "fast: 21"))
    done = trader("run", "--live", "--config", edited, env=KEYS, data_dir=tmp_path)
    assert done.returncode == 2
    assert "the live approval is for strategy version" in done.stderr and "(it was edited)" in done.stderr
    assert KEYS["EXCHANGE_API_KEY"] not in done.stderr + done.stdout
    assert KEYS["EXCHANGE_API_SECRET"] not in done.stderr + done.stdout


def test_live_with_the_exchange_unreachable_is_one_line_and_exit_2(tmp_path):
    config = tmp_path / "strategy.yaml"
    config.write_text(STRATEGY_YAML.read_text().replace("exchange: coinbase", "exchange: binance")
                      .replace("symbol: BTC/USD", "symbol: BTC/USDT"))
    assert trader("approve", "--live", "--yes", "--config", config, data_dir=tmp_path).returncode == 0
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    done = trader("run", "--live", "--config", config, "--goals", tmp_path / "none.yaml",
                  env={**KEYS, "TRADER_EXCHANGE_URL": url}, data_dir=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr + done.stdout
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("error: ")]
    assert "cannot load the market rules of BTC/USDT from binance" in line and "NetworkError" in line
    assert "check the network" in line and "nothing was traded" in line
    assert "`trader demo` shows the bot at work offline" in line  # what to do without an exchange


def test_approve_asks_and_refuses_without_a_terminal(tmp_path):
    done = trader("approve", "--live", "--config", STRATEGY_YAML, data_dir=tmp_path, stdin="")
    assert done.returncode == 2 and "pass --yes" in done.stderr


def test_replay_status_halt_and_resume(tmp_path):
    db = tmp_path / "replay.db"
    done = trader("run", "--replay", BTC_1H, "--config", STRATEGY_YAML, "--goals", tmp_path / "none.yaml",
                  "--log-json", data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)  # stdout is the summary alone (`| jq` works)
    assert summary["ticks"] == 3000 and summary["trades"] == 28 and summary["halted"] is None
    assert summary["final_equity"] == pytest.approx(24707.075206599715, rel=1e-12)
    # the log lines go to stderr, JSON, one event per line, without the libraries' INFO lines
    logs = [json.loads(line) for line in done.stderr.strip().splitlines()]
    assert len(logs) > 50 and {"order_intent", "order_filled"} <= {entry.get("event") for entry in logs}
    assert not [entry for entry in logs if entry["level"] == "INFO" and not entry["logger"].startswith("trader")]
    assert db.exists()

    env = {"DATABASE_URL": f"sqlite:///{db}"}
    status = trader("status", "--json", env=env, data_dir=tmp_path)
    snap = json.loads(status.stdout)
    assert snap["state"] == "running" and snap["equity"] == pytest.approx(24707.075206599715)
    # the round trips and the P&L add up to the equity
    trips = json.loads(trader("trades", "--json", env=env, data_dir=tmp_path).stdout)
    assert len(trips) == summary["trades"] > 0 and snap["daemon"]["alive"] is False
    assert {t["reason"] for t in trips} <= {"signal", "stop_loss", "take_profit"} and all(t["exit_time"] for t in trips)
    pnl = snap["pnl"]
    assert pnl["realised"] == pytest.approx(sum(t["pnl"] for t in trips))
    assert pnl["realised"] + pnl["unrealised"] == pytest.approx(snap["equity"] - 10_000.0)
    assert pnl["fees"] > sum(t["fees"] for t in trips) > 0  # the open position's entry fee too
    assert trips[0]["ret"] == pytest.approx(trips[0]["pnl"] / trips[0]["cost"])
    listing = trader("trades", env=env, data_dir=tmp_path).stdout
    assert f"{len(trips)} closed trades" in listing and f"total P&L {sum(t['pnl'] for t in trips):+,.2f}" in listing
    assert trader("halt", "--reason", "holiday", env=env, data_dir=tmp_path).returncode == 0
    snap = json.loads(trader("status", "--json", env=env, data_dir=tmp_path).stdout)
    assert snap["state"] == "halted" and snap["reason"] == "holiday"
    assert trader("resume", env=env, data_dir=tmp_path).returncode == 0
    snap = json.loads(trader("status", "--json", env=env, data_dir=tmp_path).stdout)
    assert snap["state"] == "running" and snap["last_event"]["kind"] == "resumed"
    again = trader("resume", env=env, data_dir=tmp_path)
    assert again.returncode == 0 and again.stdout == "not halted: nothing to resume\n"
    assert json.loads(trader("status", "--json", env=env, data_dir=tmp_path).stdout)["last_event"] == snap["last_event"]
    table = trader("status", env=env, data_dir=tmp_path)
    assert "running" in table.stdout and "f67d3370f38b" in table.stdout
    assert f" {snap['equity']:,.2f} " in table.stdout and str(snap["equity"]) not in table.stdout  # as P&L is
    assert f"realised {pnl['realised']:+,.2f}, unrealised {pnl['unrealised']:+,.2f}" in table.stdout


def test_a_replay_halted_by_the_kill_switch_says_when_and_why(tmp_path):
    goals = tmp_path / "goals.yaml"
    goals.write_text((ROOT / "config" / "goals.yaml").read_text().replace(
        "max_drawdown: 0.25   #", "max_drawdown: 0.05   #"))
    done = trader("run", "--replay", BTC_1H, "--config", STRATEGY_YAML, "--goals", goals, "--log-text",
                  data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    halted = summary["halted"]
    assert halted is not None and "drawdown" in halted["reason"]
    assert halted["equity"] < halted["peak_equity"] * 0.95  # the 5% threshold, breached
    assert "2017-07-01" <= halted["bar_time"] <= "2017-12-31"
    assert "HALTED" in done.stderr and "HALTED" not in done.stdout


def test_halt_before_any_run_is_a_clear_error(tmp_path):
    done = trader("halt", data_dir=tmp_path)
    assert done.returncode == 2 and "has never run" in done.stderr

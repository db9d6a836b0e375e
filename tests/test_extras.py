"""Optional dependencies (pyproject's extras): a feature whose extra is missing says so in
one line naming the extra and the pip command (exit 2), or, for Claude, falls back to the
rules and says why. The missing module is simulated: `sys.modules[name] = None` makes its
import fail, as it would without the package."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from trader.cli import main as trader_main
from trader.extras import EXTRAS, MissingExtra
from trader.ledger import open_ledger
from trader.ohlcv import load_ohlcv

ROOT = Path(__file__).resolve().parent.parent


def _project() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)["project"]


def test_each_extra_is_declared_and_the_test_extra_has_them_all():
    project = _project()
    extras = project["optional-dependencies"]
    core = " ".join(project["dependencies"])
    for extra, (module, _) in EXTRAS.items():
        assert extra in extras, f"pyproject has no [{extra}] extra"
        assert module not in core, f"{module} is a core dependency, not only the [{extra}] extra"
    # CI runs the Parquet, PostgreSQL and Claude tests: the test extra brings every extra
    assert any(set(EXTRAS) <= set(dep.split("[", 1)[1].rstrip("]").split(",")) for dep in extras["test"]
               if dep.startswith("hermes-trader[")), extras["test"]


def test_a_parquet_file_without_pyarrow_names_the_extra(btc, tmp_path, monkeypatch, capsys):
    path = tmp_path / "candles.parquet"
    btc.to_parquet(path)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingExtra, match=r"pip install 'hermes-trader\[parquet\]'"):
        load_ohlcv(path)
    assert trader_main(["data", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pyarrow" in err and "hermes-trader[parquet]" in err


def test_a_postgresql_ledger_without_psycopg_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingExtra, match=r"pip install 'hermes-trader\[postgres\]'"):
        open_ledger("postgresql+psycopg://user@127.0.0.1:1/nothing")
    monkeypatch.setenv("DATABASE_URL", "postgres://user@127.0.0.1:1/nothing")
    assert trader_main(["status"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "psycopg" in err and "hermes-trader[postgres]" in err


def test_claude_without_anthropic_leaves_the_choice_to_the_rules_and_says_why():
    code = """
import sys
sys.modules["anthropic"] = None  # not installed
from hermes import claude
from hermes.types import Proposal
fallback = Proposal(variable="fast", value=10, baseline_value=20, version="v", rationale="rules",
                    chosen_by="rules", candidates_tried=3, metric="sharpe")
chosen, problem = claude.choose_with_claude(None, [object()], fallback, strategy_summary="s",
                                            environ={"ANTHROPIC_API_KEY": "sk-test"})
assert chosen is fallback, chosen
print(problem)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "anthropic" in out.stdout and "pip install 'hermes-trader[claude]'" in out.stdout


def test_a_csv_backtest_needs_no_extra(tmp_path):
    """Without any extra (a fresh process in which their imports fail from the start, so
    pandas too runs without pyarrow) CSV candles load and backtest."""
    code = """
import sys
for module in ("pyarrow", "psycopg", "anthropic"):
    sys.modules[module] = None  # not installed
from trader.cli import main
sys.exit(main(["backtest", "--config", "tests/data/strategy.yaml", "--data", "tests/data/btcusd-1h.csv", "--json"]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert '"total_return"' in out.stdout

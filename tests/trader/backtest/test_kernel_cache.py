"""numba's on-disk cache of the kernel: an edit (or an upgrade) of the position rules the
kernel compiles must never leave backtests running the old rules."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ...conftest import ROOT

SOURCES = ROOT / "trader"

# a round trip with a 1% fee, through a fresh process (so the kernels come from the disk cache)
PROBE = """
import json, numpy as np
from copy_of_trader.backtest import kernel
o = h = l = c = np.array([100.0, 110.0, 120.0, 130.0])
equity, fills = np.empty(4), np.zeros((9, 6))
kernel.simulate(o, h, l, c, np.array([1.0, 1.0, 0.0, 0.0]), 1.0, 0.01, 0.0, 0.0, 0.0, 1000.0, equity, fills)
print(json.dumps({"final": equity[-1], "cache_hits": sum(kernel.simulate.stats.cache_hits.values())}))
"""


def run_probe(where: Path) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(where / "cache"), "PYTHONPATH": str(where)}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=where, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def copy_sources(tmp_path: Path) -> Path:
    """The kernel and every source compiled into it, as a package of their own."""
    package = tmp_path / "copy_of_trader"
    (package / "backtest").mkdir(parents=True)
    for name in ("__init__.py", "backtest/__init__.py"):
        (package / name).write_text("")
    for name in ("domain.py", "backtest/kernel.py", "backtest/loop.py", "backtest/rules.py"):
        shutil.copy(SOURCES / name, package / name)
    return package


@pytest.mark.slow  # four numba compiles in fresh processes (~20 s of CPU)
def test_editing_the_rules_or_the_money_rule_alone_recompiles_the_kernel(tmp_path):
    package = copy_sources(tmp_path)
    first = run_probe(tmp_path)
    again = run_probe(tmp_path)
    assert again == {"final": first["final"], "cache_hits": 1}  # the cache is used while nothing changed
    # the fee of a signal's sale doubled, in rules.py only (kernel.py untouched)
    rules = package / "backtest" / "rules.py"
    text = rules.read_text()
    assert text.count("paid = amount * fill * fee\n") == 1
    rules.write_text(text.replace("paid = amount * fill * fee\n", "paid = amount * fill * fee * 2.0\n"))
    edited = run_probe(tmp_path)
    qty = 1000 / (110 * 1.01)
    assert first["final"] == pytest.approx(qty * 130 * 0.99)
    assert edited["final"] == pytest.approx(qty * 130 * 0.98)
    assert edited["cache_hits"] == 0
    # and the money rule, which lives in domain.py and is compiled in too: a sale's fee counted
    # twice there alone (rules.py restored, kernel.py untouched)
    rules.write_text(text)
    domain = package / "domain.py"
    money = domain.read_text()
    line = "return -(notional + fee) if buying else notional - fee\n"
    assert money.count(line) == 1
    domain.write_text(money.replace(line, "return -(notional + fee) if buying else notional - 2.0 * fee\n"))
    doubled = run_probe(tmp_path)
    assert doubled["final"] == pytest.approx(qty * 130 * 0.98)
    assert doubled["cache_hits"] == 0


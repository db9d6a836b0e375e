"""numba's cache with nowhere to write (issue 12, item 9): a package folder that cannot take
a __pycache__ and no writable cache folder (NUMBA_CACHE_DIR unset, the user cache folder
impossible). The kernels then compile in each process, with one warning line, instead of
numba's `cannot cache function` RuntimeError. In a subprocess, on a copy of the package."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from . import harness as H

WARNING = "numba cannot cache the backtest kernels"


def unwritable_copy(tmp_path):
    """The packages copied; every folder's __pycache__ a regular file (so neither root nor
    anyone can create it, as on a read-only install), the user cache folder under a file."""
    pkg = tmp_path / "pkg"
    for name in ("trader", "strategies"):
        shutil.copytree(H.ROOT / name, pkg / name, ignore=shutil.ignore_patterns("__pycache__"))
    for folder in [p for p in pkg.rglob("*") if p.is_dir()]:
        (folder / "__pycache__").write_text("not a folder")
    (tmp_path / "blocked").write_text("a file, not a folder")
    env = {k: v for k, v in H.clean_env().items() if not k.startswith("NUMBA_")}
    env.update(PYTHONPATH=str(pkg), PYTHONDONTWRITEBYTECODE="1", HOME=str(tmp_path / "blocked"),
               XDG_CACHE_HOME=str(tmp_path / "blocked" / "cache"))
    return pkg, env


def run(code: list[str], env, cwd, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([H.PYTHON, *code], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_no_writable_cache_folder_means_one_warning_and_no_cache(tmp_path):
    pkg, env = unwritable_copy(tmp_path)
    done = run(["-c", "import trader.backtest.kernel as k; print(k.__file__); print(k.simulate._cache.__class__.__name__)"],
               env, tmp_path)
    assert done.returncode == 0 and "cannot cache function" not in done.stderr, done.stderr[-3000:]
    assert done.stdout.splitlines()[0].startswith(str(pkg))  # the copy, not the repository
    assert done.stdout.splitlines()[1] == "NullCache"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and WARNING in lines[0] and "NUMBA_CACHE_DIR" in lines[0], lines
    # a writable NUMBA_CACHE_DIR: cached, no warning
    cache = tmp_path / "numba-cache"
    done = run(["-c", "import trader.backtest.kernel as k; print(k.simulate._cache.__class__.__name__)"],
               {**env, "NUMBA_CACHE_DIR": str(cache)}, tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "_KernelCache" and WARNING not in done.stderr


# a backtest through the compiled kernels (the library's call, as Hermes makes it: the
# `trader backtest` command interprets a file this short without numba)
COMPILED_BACKTEST = f"""
import json
from trader.backtest import run_backtest
from trader.config import load_strategy_config
from trader.ohlcv import load_ohlcv
result = run_backtest(load_ohlcv({str(H.ROOT / "tests/data/btcusd-1h.csv")!r}),
                      load_strategy_config({str(H.ROOT / "tests/data/strategy.yaml")!r}))
print(json.dumps(result.metrics.to_dict()))
"""


@pytest.mark.slow  # compiling the kernels uncached: 4 s
def test_a_backtest_without_a_cache_folder_runs_with_the_warning(tmp_path):
    pkg, env = unwritable_copy(tmp_path)
    done = run(["-c", COMPILED_BACKTEST], env, tmp_path, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.count(WARNING) == 1 and '"total_return"' in done.stdout
    assert not any(p.suffix in (".nbi", ".nbc") for p in tmp_path.rglob("*"))  # nothing cached anywhere

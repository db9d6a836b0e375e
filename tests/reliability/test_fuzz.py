"""A small, fixed sample of the hostile-input fuzzer (benchmarks/fuzz_hostile.py): every
family of case through the real CLI entry point with a time and a memory cap, none may end in
a traceback, a hang, a death by signal or exit 0 with absurd metrics."""

from __future__ import annotations

import sys

from .harness import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import fuzz_hostile  # noqa: E402


def test_a_sample_of_hostile_inputs_through_the_cli(tmp_path):
    fuzz_hostile.preload()
    # more room than the script's 1500 MB: this process holds the whole test session's modules
    summary = fuzz_hostile.fuzz(cases=16, seed=7, timeout=20, memory_mb=3000, workdir=tmp_path)
    assert summary["failures"] == []
    assert set(summary["by_family"]) == {"yaml", "special", "csv", "args"}
    assert summary["refused_exit_2"] >= 8  # most hostile input is refused, not accepted

"""The real CLI under a time and memory cap: a hang or a runaway allocation becomes a test
failure (or a fuzzer finding) instead of a stuck or swapping machine."""

from __future__ import annotations

import resource
import subprocess
from dataclasses import dataclass

from .harness import PYTHON, ROOT

MEMORY_MB = 1500  # address space; the CLI with pandas, numba and matplotlib loaded needs ~800


@dataclass
class Outcome:
    returncode: int | None  # None: killed at the time cap
    stdout: str
    stderr: str

    @property
    def hung(self) -> bool:
        return self.returncode is None

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stdout + self.stderr


def _limit(memory_mb: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    return apply


def run(args: list[str], env: dict[str, str], timeout: float = 30, memory_mb: int = MEMORY_MB,
        module: str = "trader.cli", stdin: str | None = None) -> Outcome:
    """`python -m module args` with the caps; stdout and stderr as text."""
    # the cap counts address space: pyarrow's default pool (mimalloc, loaded by pandas) reserves
    # 1 GiB it never touches, and whether it gets it depends on what was mapped before; the
    # system allocator keeps the cap about memory the command uses
    env = {"ARROW_DEFAULT_MEMORY_POOL": "system", **env}
    try:
        done = subprocess.run([PYTHON, "-m", module, *args], cwd=ROOT, env=env, capture_output=True,
                              timeout=timeout, preexec_fn=_limit(memory_mb),
                              input=(stdin or "").encode(), )
    except subprocess.TimeoutExpired as exc:
        return Outcome(None, (exc.stdout or b"").decode("utf-8", "replace"), (exc.stderr or b"").decode("utf-8", "replace"))
    return Outcome(done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace"))

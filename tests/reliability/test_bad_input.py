"""Bad input, tried systematically: every field of the strategy and goals files mutated
(wrong type, missing, unknown keys, huge numbers, NaN, infinities, negative fractions,
unicode, nested junk) plus whole-file junk (empty, binary, not UTF-8, broken syntax, hostile
YAML). Each must be refused with exit code 2 and one message naming the file and the field,
never a traceback; a mutation the loader accepts must leave a usable file.

All mutations run in-process through the loaders; a sample also through the real CLI
(`trader check`, `trader run --replay`), and hypothesis adds random ones.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trader.config import load_strategy_config
from trader.errors import ConfigError
from trader.goals import load_goals

from . import harness as H
from . import mutations as M

DATA = H.ROOT / "tests" / "data" / "btcusd-1h.csv"
MUTATIONS = M.all_mutations()
_SCRATCH = Path(tempfile.mkdtemp(prefix="reliability-fuzz-"))  # one folder: 1,700 tmp_paths cost seconds
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)
names_field, known_bug, KNOWN_BUGS, _write = M.names_field, M.known_bug, M.KNOWN_BUGS, M.write


def outcome(mutation: M.Mutation, btc) -> list[str]:
    return M.evaluate(mutation, _SCRATCH, btc)


def _groups() -> dict[str, list[M.Mutation]]:
    """Mutations by the section they damage (one test each; 1,700 test items would cost
    more in pytest's bookkeeping than in the loaders)."""
    groups: dict[str, list[M.Mutation]] = {}
    for m in MUTATIONS:
        target = m.name.split(":")[0].split("=")[0]
        section = target.split("/")[0] + "/" + target.split("/")[-1].split(".")[0] if "/" in target else \
            target.split(".")[0]
        groups.setdefault(f"{m.kind}:{section}", []).append(m)
    return groups


GROUPS = _groups()
KNOWN = {m.id: known_bug(m) for m in MUTATIONS if known_bug(m)}


@pytest.mark.parametrize("group", list(GROUPS))
def test_each_mutation_is_refused_clearly_or_harmless(group, btc):
    problems = [p for m in GROUPS[group] if m.id not in KNOWN for p in outcome(m, btc)]
    assert problems == []


@pytest.mark.parametrize("name, make", M.YAML_LAYER_BUGS, ids=[n for n, _ in M.YAML_LAYER_BUGS])
def test_yaml_layer_damage_is_refused_clearly(name, make, tmp_path):
    path = tmp_path / "strategy.yaml"
    path.write_text(make(M.STRATEGY_FILE.read_text()))
    with pytest.raises(ConfigError):
        load_strategy_config(path)


# -- the real CLI, for a sample -----------------------------------------------------------

# (mutation, command): `check` reads only the strategy file; `run --replay` reads both files
SAMPLE = [
    ("strategy:params.fast=text", "check"), ("strategy:risk.stake_fraction=nan", "check"),
    ("strategy:risk.ключ☃𝔘:unknown", "check"), ("strategy:file:binary_junk", "check"),
    ("goals:review.cron=unicode", "run"),
    ("strategy:name:missing", "run"), ("strategy:file:billion_laughs", "run"),
    ("goals:failure.thresholds.max_drawdown=nan", "run"), ("goals:file:empty", "run"),
]


def _cli_args(mutation: M.Mutation, command: str, folder: Path) -> list[str]:
    path = _write(mutation, folder)
    if command == "check":
        return ["check", "--config", str(path)]
    config, goals = (path, M.GOALS_FILE) if mutation.kind == "strategy" else (M.STRATEGY_FILE, path)
    return ["run", "--replay", str(DATA), "--config", str(config), "--goals", str(goals)]


@pytest.mark.long  # a dozen CLI processes; every mutation also runs in-process above
def test_a_sample_through_the_real_cli(tmp_path):
    by_id = {m.id: m for m in MUTATIONS}
    jobs = []
    for i, (mid, command) in enumerate(SAMPLE):
        folder = tmp_path / f"m{i}"
        folder.mkdir()
        jobs.append((by_id[mid], folder, _cli_args(by_id[mid], command, folder)))
    env = H.clean_env(TRADER_DATA_DIR=str(tmp_path / "data"))

    def run(job):
        mutation, folder, args = job
        return job, H.trader(args, env, timeout=120)

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = list(pool.map(run, jobs))
    for (mutation, folder, args), done in results:
        shown = f"{mutation.id} {args[0]}: rc {done.returncode}\n{done.stderr}"
        assert done.returncode == 2, shown
        assert "Traceback" not in done.stderr + done.stdout, shown
        name = "strategy.yaml" if mutation.kind == "strategy" else "goals.yaml"
        assert done.stderr.startswith("error: ") and str(folder / name) in done.stderr, shown
        if mutation.field is not None:
            assert names_field(done.stderr, mutation.field), shown


def test_a_huge_capital_is_refused_by_the_cli(tmp_path):
    path = tmp_path / "strategy.yaml"
    path.write_text(M.STRATEGY_FILE.read_text().replace("capital: 10000", "capital: 1e308"))
    data = tmp_path / "short.csv"  # enough bars for a first fill
    data.write_text("".join(DATA.read_text().splitlines(keepends=True)[:400]))
    done = H.trader(["run", "--replay", str(data), "--config", str(path), "--goals", str(M.GOALS_FILE)],
                    H.clean_env(TRADER_DATA_DIR=str(tmp_path)))
    assert "Traceback" not in done.stderr
    assert done.returncode == 2 and "capital" in done.stderr


# -- hypothesis: random damage -------------------------------------------------------------

_BASES = {"strategy": M.base_strategies()["ma_cross"], "goals": M.base_goals()}
_PATHS = {kind: [p for p, _ in M.paths(doc)] for kind, doc in _BASES.items()}
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def damaged_files(draw):
    kind = draw(st.sampled_from(["strategy", "goals"]))
    doc = _BASES[kind]
    edits = draw(st.lists(st.tuples(st.sampled_from(_PATHS[kind]), st.sampled_from(["set", "delete", "add"]),
                                    _values, _text), min_size=1, max_size=3))
    for path, op, value, key in edits:
        try:
            if op == "set":
                doc = M._set(doc, path, value)
            elif op == "delete":
                doc = M._delete(doc, path)
            else:
                doc = M._set(doc, path[:-1] + (key or "k",), value)
        except (KeyError, TypeError):
            pass  # an earlier edit removed or replaced the section
    text = M.dump(doc).encode("utf-8")
    if draw(st.booleans()):  # and sometimes raw damage to the bytes
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 8))
        text = text[:at] + draw(st.binary(max_size=12)) + text[at + cut:]
    return kind, text


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(damaged_files())
def test_random_damage_never_escapes_as_a_traceback(case):
    kind, text = case
    path = _SCRATCH / f"{kind}.yaml"
    path.write_bytes(text)
    try:
        (load_strategy_config if kind == "strategy" else load_goals)(path)
    except ConfigError as exc:
        assert str(exc).startswith(str(path))
    except yaml.YAMLError as exc:  # pragma: no cover - would be a bug
        raise AssertionError(f"YAML error escaped: {exc}") from exc


def test_the_inputs_tried_are_many():
    strategy = sum(m.kind == "strategy" for m in MUTATIONS)
    goals = len(MUTATIONS) - strategy
    assert strategy > 1000 and goals > 250

"""Changing the strategy file on the user's behalf: one variable rewritten in place (their
comments and layout kept), a header line saying what changed and why, the previous version
kept beside the ledger's copy. The result is validated before it replaces the file."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import yaml

from trader.config import StrategyConfig, parse_strategy_config
from trader.files import write_atomically

from trader.yamlfile import parse_yaml

HEADER = "# Hermes "
MAX_HEADER_LINES = 12


def rewrite(text: str, current: StrategyConfig, new: StrategyConfig, note: str, when: datetime) -> str:
    """The strategy file's text with `new`'s values, keeping everything else as written."""
    body = _in_place(text, current, new)
    if body is None:
        body = yaml.safe_dump(new.to_dict(), sort_keys=False)  # layout we cannot edit safely
    kept = [line for line in body.splitlines(keepends=True)]
    old_headers = [line for line in kept if line.startswith(HEADER)]
    rest = [line for line in kept if not line.startswith(HEADER)]
    header = f"{HEADER}{when:%Y-%m-%d %H:%M}Z: {note.strip().splitlines()[0][:300]}\n"
    out = "".join([header] + old_headers[: MAX_HEADER_LINES - 1] + rest)
    check = parse_strategy_config(parse_yaml(out, "<rewritten>", "settings")[0], "<rewritten>")
    if check.version != new.version:
        raise ValueError(f"rewriting the strategy file gave version {check.version}, expected {new.version}")
    return out


def _in_place(text: str, current: StrategyConfig, new: StrategyConfig) -> str | None:
    old, want = current.to_dict(), new.to_dict()
    changed = [(section, key) for section in ("params", "risk") for key in want[section]
               if want[section][key] != old[section].get(key)]
    if any(old[k] != want[k] for k in want if k not in ("params", "risk")):
        return None
    _, lines = parse_yaml(text, "<current>", "settings")
    rows = text.splitlines(keepends=True)
    for section, key in changed:
        line = lines.get((section, key))
        if line is None:
            return None
        pattern = re.compile(rf"^(\s*{re.escape(key)}\s*:\s*)([^#\n]*?)(\s*(#.*)?)(\r?\n)?$")
        match = pattern.match(rows[line - 1])
        if match is None:
            return None
        value = want[section][key]
        scalar = "null" if value is None else yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")
        rows[line - 1] = f"{match.group(1)}{scalar}{match.group(3) or ''}{match.group(5) or ''}"
    return "".join(rows)


def keep_previous(text: str, version: str, data_dir: Path) -> Path:
    folder = Path(data_dir) / "versions"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"strategy-{version}.yaml"
    if not path.exists():
        write_atomically(path, text)
    return path

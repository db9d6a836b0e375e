"""Changing the strategy file on the user's behalf: the changed values rewritten in place
(their comments, key order, quoting and layout kept), a header line saying what changed and
why, the previous version kept beside the ledger's copy. The result is validated before it
replaces the file.

ruamel.yaml, a round-trip YAML library, reads the file. A changed value the file already holds
is replaced where it stands, at the exact span the parser reports, so every other byte stays
as the user wrote it. A key the file lacks (a default it never spelled out) or a change of
shape is made in ruamel's round-trip document, which keeps comments and key order but
normalises spacing inside flow mappings. Only when neither gives the new version (a layout we
cannot edit safely) is the whole file written afresh."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from trader.config import StrategyConfig, parse_strategy_config
from trader.errors import ConfigError
from trader.files import write_atomically
from trader.yamlfile import parse_yaml

HEADER = "# Hermes "
MAX_HEADER_LINES = 12

KeyPath = tuple[str, ...]
_REMOVED = object()  # a change that deletes the key


def rewrite(text: str, current: StrategyConfig, new: StrategyConfig, note: str, when: datetime) -> str:
    """The strategy file's text with `new`'s values, keeping everything else as written."""
    changes = _changes(current.to_dict(), new.to_dict())
    header = f"{HEADER}{when:%Y-%m-%d %H:%M}Z: {note.strip().splitlines()[0][:300]}\n"
    for edit in (_spliced, _round_trip, _fresh):
        body = edit(text, changes, new)
        if body is None:
            continue
        out = _with_header(body, header)
        if _version_of(out) == new.version:
            return out
    raise ValueError(f"rewriting the strategy file did not give version {new.version}")


def keep_previous(text: str, version: str, data_dir: Path) -> Path:
    folder = Path(data_dir) / "versions"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"strategy-{version}.yaml"
    if not path.exists():
        write_atomically(path, text)
    return path


# -- what changes -----------------------------------------------------------------------------


def _changes(old: dict[str, Any], want: dict[str, Any], prefix: KeyPath = ()) -> dict[KeyPath, Any]:
    """Leaf paths whose value differs, with the new value (or _REMOVED)."""
    out: dict[KeyPath, Any] = {}
    for key in list(want) + [k for k in old if k not in want]:  # the new keys in the model's order
        path = prefix + (key,)
        if key not in want:
            out[path] = _REMOVED
        elif isinstance(want[key], dict) and isinstance(old.get(key), dict):
            out.update(_changes(old[key], want[key], path))
        elif key not in old or want[key] != old[key]:
            out[path] = want[key]
    return out


# -- the three ways to write them, least invasive first -------------------------------------


def _spliced(text: str, changes: dict[KeyPath, Any], new: StrategyConfig) -> str | None:
    """Each changed scalar replaced at its span in the text; None if any change is more than that."""
    try:
        root = YAML().compose(text)
    except YAMLError:
        return None
    spans = []
    for path, value in changes.items():
        node = _node_at(root, path)
        if value is _REMOVED or isinstance(value, (dict, list)) or not isinstance(node, ScalarNode):
            return None
        if node.anchor is not None:  # an alias elsewhere would change with it
            return None
        spans.append((node.start_mark.index, node.end_mark.index, _scalar(value, node.style)))
    for start, end, scalar in sorted(spans, reverse=True):
        text = text[:start] + scalar + text[end:]
    return text


def _round_trip(text: str, changes: dict[KeyPath, Any], new: StrategyConfig) -> str | None:
    """The changes made in ruamel's round-trip document: comments and key order kept."""
    rt = YAML()
    rt.width = 4096  # a long line stays one line
    try:
        doc = rt.load(text)
        if not isinstance(doc, CommentedMap):
            return None
        for path, value in changes.items():
            parent = doc
            for key in path[:-1]:
                if not isinstance(parent.get(key), dict):
                    parent[key] = CommentedMap()
                parent = parent[key]
            if value is _REMOVED:
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = value
        out = io.StringIO()
        rt.dump(doc, out)
    except (YAMLError, TypeError, ValueError):
        return None
    return out.getvalue()


def _fresh(text: str, changes: dict[KeyPath, Any], new: StrategyConfig) -> str:
    return yaml.safe_dump(new.to_dict(), sort_keys=False)


# -- helpers -------------------------------------------------------------------------------------


def _node_at(root: Node | None, path: KeyPath) -> Node | None:
    node = root
    for key in path:
        if not isinstance(node, MappingNode):
            return None
        node = next((v for k, v in node.value if isinstance(k, ScalarNode) and k.value == key), None)
    return node


def _scalar(value: Any, style: str | None) -> str:
    """`value` as a one-line YAML scalar that the daemon's reader (PyYAML) reads back as
    `value`; a string keeps the quotes the user gave the old one."""
    if isinstance(value, str) and "\n" not in value:
        if style == "'":
            return "'" + value.replace("'", "''") + "'"
        if style == '"':
            return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "null"
    dumped = yaml.safe_dump(value, default_flow_style=True, width=4096)
    return dumped.strip().removesuffix("\n...").strip()


def _with_header(body: str, header: str) -> str:
    lines = body.splitlines(keepends=True)
    old_headers = [line for line in lines if line.startswith(HEADER)]
    rest = [line for line in lines if not line.startswith(HEADER)]
    return "".join([header] + old_headers[: MAX_HEADER_LINES - 1] + rest)


def _version_of(text: str) -> str | None:
    try:
        return parse_strategy_config(parse_yaml(text, "<rewritten>", "settings")[0], "<rewritten>").version
    except ConfigError:
        return None

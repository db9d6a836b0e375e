"""Reading the user's YAML files: parse once, remember where each key sits, and turn
validation errors into one message naming the file, the line, the field and what was
expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .errors import ConfigError

Problem = tuple[tuple[str, ...], str]


class LocatedError(ValueError):
    """A validation error that knows which field it is about (raised inside validators)."""

    def __init__(self, loc: str, message: str):
        super().__init__(message)
        self.loc = loc


def read_yaml(path: str | Path, what: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    """The file's data and the line of every mapping key; ConfigError for an unreadable,
    binary, empty or syntactically broken file. `what` says what the file should hold."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the file as UTF-8 text ({exc.__class__.__name__})") from None
    return parse_yaml(text, str(path), what)


def parse_yaml(text: str, source: str, what: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    if "\x00" in text:
        raise ConfigError(f"{source}: not a YAML text file (it contains binary data)")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be {what}") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts
        raise ConfigError(f"{source}: a value cannot be read ({str(exc)[:120]}); expected {what}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: {where}YAML syntax error: {problem}") from None
    if data is None:
        raise ConfigError(f"{source}: the file is empty; expected {what}")
    lines: dict[tuple[str, ...], int] = {}
    _collect_lines(node, (), lines)
    return data, lines


def _collect_lines(node: Any, path: tuple[str, ...], out: dict[tuple[str, ...], int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = path + (str(key.value),)
            out[child] = key.start_mark.line + 1
            _collect_lines(value, child, out)


def pydantic_problems(
    exc: ValidationError, prefix: tuple[str, ...], model: type[BaseModel]
) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = tuple(str(part) for part in err["loc"])
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, LocatedError):
            problems.append((tuple(ctx_error.loc.split(".")), str(ctx_error)))
            continue
        if err["type"] == "extra_forbidden":
            fields = _fields_at(model, loc[:-1])
            hint = f"; expected one of: {', '.join(fields)}" if fields else ""
            message = f"unknown key{hint}"
        elif err["type"] == "missing":
            message = "required but missing"
        else:
            message = err["msg"]
            if message.startswith("Value error, "):
                message = message[len("Value error, "):]
            if err["type"] not in ("value_error", "assertion_error") and "input" in err:
                message += f" (got {_show(err['input'])})"
        problems.append((prefix + loc, message))
    return problems


def _fields_at(model: type[BaseModel], loc: tuple[str, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = field.annotation
    return list(getattr(current, "model_fields", {}))


def format_problems(source: str, title: str, problems: list[Problem], lines: dict) -> str:
    out = [f"{source}: {title}"]
    for loc, message in problems:
        field = ".".join(loc) or "(top level)"
        line = _nearest_line(loc, lines)
        where = f"line {line}, " if line else ""
        out.append(f"  {where}{field}: {message}")
    return "\n".join(out)


def _nearest_line(loc: tuple[str, ...], lines: dict) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def kind_of(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

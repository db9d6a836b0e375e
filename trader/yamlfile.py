"""Reading the user's YAML files: parse once, remember where each key sits, and turn
validation errors into one message naming the file, the line, the field and what was
expected."""

from __future__ import annotations

import functools
import os
import stat
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError

Problem = tuple[tuple[str, ...], str]


class Frozen(BaseModel):
    """What a YAML file is loaded into, once: immutable, unknown keys refused, no inf/NaN."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class LocatedError(ValueError):
    """A validation error that knows which field it is about (raised inside validators)."""

    def __init__(self, loc: str, message: str):
        super().__init__(message)
        self.loc = loc


MAX_BYTES = 1_000_000  # a strategy or goals file is a few kB; more is a mistake or an attack
MAX_NODES = 20_000  # YAML nodes after aliases are followed (the example files have ~100)
MAX_ALIASES = 100
MAX_DEPTH = 50  # mapping keys; the example files go 3 deep


def read_text_file(path: str | Path, limit: int = MAX_BYTES) -> str:
    """The UTF-8 text of a regular file of at most `limit` bytes; ConfigError otherwise.
    Opened without blocking and checked before reading, so a FIFO, /dev/zero or a huge file
    is refused at once instead of hanging or filling memory."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory; expected a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot open the file ({exc.strerror or exc.__class__.__name__})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: not a regular file; expected a YAML file")
        if info.st_size > limit:
            raise ConfigError(f"{path}: {info.st_size:,} bytes; expected a YAML file of at most {limit:,} bytes")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)  # the file may grow after fstat
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror or exc.__class__.__name__})") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ConfigError(f"{path}: more than {limit:,} bytes; expected a YAML file of at most {limit:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read the file as UTF-8 text (UnicodeDecodeError)") from None


def read_yaml(path: str | Path, what: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    """The file's data and the line of every mapping key; ConfigError for an unreadable,
    binary, empty, oversized or syntactically broken file. `what` says what the file should hold."""
    return parse_yaml(read_text_file(path), str(path), what)


def parse_yaml(text: str, source: str, what: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    if "\x00" in text:
        raise ConfigError(f"{source}: not a YAML text file (it contains binary data)")
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{source}: {len(text):,} characters; expected at most {MAX_BYTES:,}")
    try:
        loader = _BoundedLoader(text, source)
        try:
            node = loader.get_single_node()
            lines: dict[tuple[str, ...], int] = {}
            # before anything expands aliases: bounded size, unique keys
            _check_nodes(node, source, lines)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except (RecursionError, MemoryError, SystemError):  # SystemError: PyYAML's C parts out of stack or memory
        raise ConfigError(f"{source}: nested too deeply or too large to be {what}") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts
        raise ConfigError(f"{source}: a value cannot be read ({str(exc)[:120]}); expected {what}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: {where}YAML syntax error: {problem}") from None
    if data is None:
        raise ConfigError(f"{source}: the file is empty; expected {what}")
    return data, lines


class _BoundedLoader(yaml.SafeLoader):
    """Stops composing after MAX_NODES nodes: 300,000 scalars in a flow list took PyYAML
    minutes to compose, long before any later check could look at them."""

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source, self.composed = source, 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.composed += 1
        if self.composed > MAX_NODES:
            raise ConfigError(f"{self.source}: more than {MAX_NODES:,} values; expected a small settings file")
        return super().compose_node(parent, index)


def _check_nodes(root: Any, source: str, lines: dict[tuple[str, ...], int]) -> None:
    """Walk the composed nodes as the loaded data would be (aliases followed), without
    recursion, and stop at MAX_NODES: an alias bomb costs at most that many steps. Refuses
    too many aliases and a key written twice in one mapping; records each key's line."""
    if root is None:
        return
    aliases = sum(1 for event in _anchors(root))
    if aliases > MAX_ALIASES:
        raise ConfigError(f"{source}: {aliases} YAML aliases (*name); expected at most {MAX_ALIASES}")
    seen = 0
    stack: list[tuple[Any, tuple[str, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise ConfigError(f"{source}: more than {MAX_NODES:,} values once aliases are expanded; "
                              "expected a small settings file")
        if len(path) > MAX_DEPTH:  # each level's path is a longer tuple: a cycle of mappings grows quadratically
            raise ConfigError(f"{source}: keys nested more than {MAX_DEPTH} deep; expected a small settings file")
        if isinstance(node, yaml.MappingNode):
            keys: dict[str, int] = {}
            for key, value in node.value:
                name = str(key.value) if isinstance(key, yaml.ScalarNode) else f"<{key.tag}>"
                line = key.start_mark.line + 1
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if name in keys:
                        field = ".".join(path + (name,))
                        raise ConfigError(f"{source}: line {line}, {field}: written twice (first on line "
                                          f"{keys[name]}); expected each key once")
                    keys[name] = line
                child = path + (name,)
                lines.setdefault(child, line)
                stack.append((key, path))
                stack.append((value, child))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, path) for item in node.value)


def _anchors(root: Any):
    """Each alias use: a node reached a second time through the node graph (PyYAML composes
    `*name` as the anchored node itself). Visits each distinct node once."""
    visited: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in visited:
            yield node
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


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


def boolean_problems(raw: Any, model: Any, prefix: tuple[str, ...] = ()) -> list[Problem]:
    """A boolean where `model` expects a number (YAML reads yes/no/true/false as booleans, and
    pydantic would take them as 1 and 0, silently or with "less than 1 (got True)"): one
    problem per such field, saying what number was expected. Walks nested models and
    mappings of models (tunable bounds)."""
    problems: list[Problem] = []
    if not isinstance(raw, dict):
        return problems
    plan = _boolean_plan(model)
    for key, value in raw.items():
        entry = plan.get(key) if isinstance(key, str) else None
        if entry is None:
            continue
        wanted, nested, items = entry
        loc = prefix + (key,)
        if wanted is not None and isinstance(value, bool):
            problems.append((loc, f"expected {wanted}, got a boolean (YAML reads yes, no, true and false as booleans)"))
            continue
        for kind in nested:
            problems += boolean_problems(value, kind, loc)
        if items is not None and isinstance(value, dict):
            for name, item in value.items():
                problems += boolean_problems(item, items, loc + (str(name),))
    return problems


@functools.lru_cache(maxsize=None)
def _boolean_plan(model: Any) -> dict[str, tuple[str | None, tuple, Any]]:
    """Per field of `model`: the number it wants (None: not a number), its nested models, and
    the model of its values when it is a mapping of models."""
    plan = {}
    for name, field in (getattr(model, "model_fields", None) or {}).items():
        kinds = _kinds(field.annotation)
        wanted = _number_wanted(field, kinds) if kinds & {int, float} and bool not in kinds else None
        nested = tuple(k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel))
        args = typing.get_args(field.annotation)
        items = args[1] if (typing.get_origin(field.annotation) is dict and len(args) == 2
                            and isinstance(args[1], type) and issubclass(args[1], BaseModel)) else None
        if wanted is not None or nested or items is not None:
            plan[name] = (wanted, nested, items)
    return plan


def _kinds(annotation: Any) -> set:
    """The types an annotation admits: Optional[float] -> {float, NoneType}."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return {k for arg in typing.get_args(annotation) for k in _kinds(arg)}
    if typing.get_origin(annotation) is typing.Annotated:
        return _kinds(typing.get_args(annotation)[0])
    return {annotation}


def _number_wanted(field: Any, kinds: set) -> str:
    """'a number between 0 and 1 or null', from the field's type and its gt/ge/lt/le."""
    low = high = None
    for item in field.metadata:
        for name in ("gt", "ge"):
            if getattr(item, name, None) is not None:
                low = getattr(item, name)
        for name in ("lt", "le"):
            if getattr(item, name, None) is not None:
                high = getattr(item, name)
    noun = "a whole number" if float not in kinds else "a number"
    span = (f" between {low:g} and {high:g}" if low is not None and high is not None
            else f" of at least {low:g}" if low is not None else f" of at most {high:g}" if high is not None else "")
    return noun + span + (" or null" if type(None) in kinds else "")


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
    from .logs import Scrubber, secret_env_values

    # masked before the cut: half a credential is still a leak no scrubber would recognise
    text = Scrubber(secret_env_values()).text(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."

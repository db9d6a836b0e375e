"""What the daemon's HTTP answers, its command line and its JSON logs share: strict JSON of
status values (`to_jsonable`, `dumps`) and the port from `$PORT` (`port_from_env`).

The server of `/health` and `/status` is trader.web (with the dashboard); this module stays
light (stdlib only) so `trader status --json` and the logs need neither starlette nor uvicorn.
"""

from __future__ import annotations

import enum
import json
import math
import numbers
import os
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from trader.errors import InputError


# --- JSON ----------------------------------------------------------------------------------


def to_jsonable(obj: Any, *, default: Callable[[Any], Any] | None = None) -> Any:
    """`obj` as plain JSON types: datetimes as ISO 8601 UTC ("...Z"; naive ones are taken as
    UTC), Decimal and numpy numbers as numbers, NaN and infinities as None, sets and tuples as
    lists. `default` converts anything else; without it such a value raises TypeError.

    A pre-walk rather than a `json.JSONEncoder.default`, because the encoder never calls
    `default` for floats, so NaN could not become null there.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, int):
        return int(obj)  # also bool-free int subclasses such as IntEnum members
    if isinstance(obj, Decimal):
        # A float: /status is read by people and monitors, not used as a ledger.
        return float(obj) if obj.is_finite() else None
    if isinstance(obj, datetime):
        return _iso_utc(obj)
    if isinstance(obj, (date, time)):
        return obj.isoformat()
    if isinstance(obj, timedelta):
        return obj.total_seconds()
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value, default=default)
    if isinstance(obj, (PurePath, uuid.UUID)):
        return str(obj)
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj).decode("utf-8", "replace")
    if isinstance(obj, Mapping):
        return {_key(k): to_jsonable(v, default=default) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v, default=default) for v in obj]
    if type(obj).__module__ == "numpy" and hasattr(obj, "item"):
        return to_jsonable(obj.item(), default=default)  # numpy scalars, without importing numpy
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return to_jsonable(float(obj), default=default)
    if default is not None:
        return to_jsonable(default(obj))
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def dumps(obj: Any) -> str:
    """Strict JSON (no NaN tokens) of `obj` after `to_jsonable`."""
    return json.dumps(to_jsonable(obj), allow_nan=False)


def _iso_utc(when: datetime) -> str | None:
    if when != when:  # pandas.NaT is a datetime that is not equal to itself
        return None
    when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
    return when.isoformat().replace("+00:00", "Z")


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, datetime):
        return _iso_utc(key) or "null"
    if isinstance(key, enum.Enum):
        return str(key.value)
    return str(key)


# --- $PORT ---------------------------------------------------------------------------------


def port_from_env(environ: Mapping[str, str] = os.environ, default: int = 8080) -> int:
    """The port in `$PORT` (Railway sets it), or `default` when it is unset or empty."""
    raw = environ.get("PORT", "").strip()
    if not raw:
        return default
    shown = raw if len(raw) <= 40 else raw[:40] + "..."
    try:
        port = int(raw, 10)
    except ValueError:
        raise InputError(f"environment variable PORT must be a whole number from 1 to 65535, got {shown!r}") from None
    if not 1 <= port <= 65535:
        raise InputError(f"environment variable PORT must be from 1 to 65535, got {port}")
    return port

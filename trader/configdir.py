"""Where the strategy and goals files the daemon trades live, and how a deployment's files
reach them.

Locally they are `config/strategy.yaml` and `config/goals.yaml` under the working directory.
In a container the image's files are read-only history: Hermes' promotions and edits made
in the container must outlive a redeploy, so the image sets

* `TRADER_CONFIG_DIR=/data/config`: the files the daemon trades, on the volume;
* `TRADER_CONFIG_FROM=/app/config`: the repository's files, as deployed.

`trader run` calls `sync_deployed` before it reads them. Per file: on a fresh volume the
deployed file is copied; afterwards the volume's file is kept, unless the deployed file
changed since it was last copied (the user edited the repository and pushed): then the
user's new file wins and the volume's copy it replaces is kept under `<data>/versions/`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .files import write_atomically

log = logging.getLogger("trader.config")

FILES = ("strategy.yaml", "goals.yaml")
_RECORD = ".deployed.json"  # sha256 of each deployed file when it was last copied


def config_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("TRADER_CONFIG_DIR") or "config")


def default_path(name: str, environ: Mapping[str, str] = os.environ) -> str:
    """The default of every `--config` / `--goals` option."""
    return str(config_dir(environ) / name)


@dataclass(frozen=True)
class Synced:
    name: str
    action: str  # copied | replaced | kept | unchanged
    kept_at: Path | None = None  # where a replaced volume file was saved


def sync_deployed(environ: Mapping[str, str] = os.environ, now: datetime | None = None) -> list[Synced]:
    """Bring the deployed files (TRADER_CONFIG_FROM) into TRADER_CONFIG_DIR; nothing to do
    when either is unset or both are the same folder."""
    source, target = environ.get("TRADER_CONFIG_FROM"), environ.get("TRADER_CONFIG_DIR")
    if not source or not target or Path(source).resolve() == Path(target).resolve():
        return []
    from .ledger.db import data_dir

    source_dir, target_dir = Path(source), Path(target)
    target_dir.mkdir(parents=True, exist_ok=True)
    record_path = target_dir / _RECORD
    record = _read_record(record_path)
    now = now or datetime.now(timezone.utc)
    done = []
    for name in FILES:
        deployed = source_dir / name
        if not deployed.is_file():
            continue
        text = deployed.read_bytes()
        digest = hashlib.sha256(text).hexdigest()
        current = target_dir / name
        if not current.exists():
            result = Synced(name, "copied")
        elif record.get(name) == digest:
            result = Synced(name, "kept")
        elif current.read_bytes() == text:
            result = Synced(name, "unchanged")
        else:
            kept = Path(data_dir(environ)) / "versions" / f"replaced-{now:%Y%m%dT%H%M%SZ}-{name}"
            _copy_bytes(current.read_bytes(), kept)
            result = Synced(name, "replaced", kept)
        if result.action in ("copied", "replaced"):
            _copy_bytes(text, current)
        record[name] = digest
        done.append(result)
        _log(result, deployed, current)
    write_atomically(record_path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return done


def _copy_bytes(data: bytes, path: Path) -> None:
    write_atomically(path, lambda handle: handle.write(data), binary=True)


def _read_record(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # no record (a fresh volume) or a damaged one: the deployed files count as new
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(data, dict) else {}


def _log(result: Synced, deployed: Path, current: Path) -> None:
    if result.action == "copied":
        log.info("%s: copied the deployed %s", current, deployed, extra={"event": "config_copied"})
    elif result.action == "replaced":
        log.warning("%s: the deployed %s changed since the last deployment and replaces it; the file it "
                    "replaces (Hermes' promotions or edits made in the container) is kept at %s",
                    current, deployed, result.kept_at, extra={"event": "config_replaced"})
    elif result.action == "kept":
        log.info("%s: kept (the deployed file has not changed since it was copied)", current,
                 extra={"event": "config_kept"})

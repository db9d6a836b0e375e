"""The user's consent to Hermes, and the undo: approve or revoke apply mode, roll back to a
listed version. One implementation for `hermes approve` / `hermes rollback` and the dashboard's
controls. Live trading is never granted here: `trader approve --live` is the only way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from trader.config import load_strategy_config, parse_strategy_config
from trader.errors import InputError
from trader.files import write_atomically
from trader.ledger import store
from trader.ledger.models import Approval, Review, StrategyVersion, utcnow

from .versions import keep_previous, rewrite


def approve_apply(factory, *, live_inherits: bool, by: str = "hermes approve") -> None:
    """Apply mode from the next review; refused until one read-only review has completed and
    measured something (a review of a window without equity points scores nothing)."""
    problem = apply_refused(factory)
    if problem:
        raise InputError(problem)
    with factory.begin() as s:
        s.add(Approval(kind="hermes_apply", detail={"live": bool(live_inherits), "by": by}))
        store.record_event(s, "approval", "Hermes apply mode approved" + (" (live inherits)" if live_inherits else "")
                           + f" by {by}")


def apply_refused(factory) -> str | None:
    """Why apply mode cannot be approved yet, or None: it needs one completed review that
    measured something (a goal with a value), whose report the user could read."""
    with factory() as s:
        reviews = [(r.id, r.result) for r in s.query(Review).order_by(Review.id)]
    if not reviews:
        return ("apply mode is refused until one read-only review has completed: "
                "run `hermes review` (or let the daemon's weekly review run) and read its report first")
    if not any(_measured(result) for _, result in reviews):
        ids = ", ".join(f"#{i}" for i, _ in reviews)
        which = f"review {ids} found no equity points in its window, so it" if len(reviews) == 1 else \
            f"reviews {ids} found no equity points in their windows, so they"
        return (f"apply mode is refused until a read-only review has measured something: {which} scored no "
                "goal; let the daemon trade (`trader run`), then run "
                "`hermes review` again and read its report")
    return None


def _measured(result: dict | None) -> bool:
    """Whether a recorded review (its CycleResult as JSON) scored some goal."""
    goals = ((result or {}).get("scorecard") or {}).get("goals")
    return not isinstance(goals, list) or any(g.get("value") is not None for g in goals if isinstance(g, dict))


def revoke_apply(factory, *, by: str = "hermes approve --revoke") -> int:
    """Back to read-only from the next review; how many approvals were revoked (0: was not)."""
    with factory.begin() as s:
        revoked = 0
        for approval in s.query(Approval).filter_by(kind="hermes_apply", revoked_at=None):
            approval.revoked_at = utcnow()
            revoked += 1
        store.record_event(s, "approval", f"Hermes apply mode revoked by {by}: read-only from the next review")
    return revoked


@dataclass(frozen=True)
class Rollback:
    current: str
    target: str
    changed: bool  # False: the file already was that version


def rollback(factory, path: Path, version: str, data_dir: Path, now: datetime, by: str = "by hand") -> Rollback:
    """Restore a listed version into the strategy file (the previous file kept in versions/);
    the daemon trades it from its next tick."""
    current = load_strategy_config(path)
    text = Path(path).read_text(encoding="utf-8")
    with factory() as s:
        row = s.get(StrategyVersion, version)
        if row is None:
            known = ", ".join(v.version for v in s.query(StrategyVersion).order_by(StrategyVersion.created_at))
            raise InputError(f"unknown strategy version {version!r}; known: {known or 'none'}")
        settings = dict(row.settings)
    target = parse_strategy_config(settings, f"<version {version}>")
    if target.version == current.version:
        return Rollback(current.version, target.version, changed=False)
    keep_previous(text, current.version, data_dir)
    note = f"rolled back {by} {current.version} -> {target.version}"
    new_text = rewrite(text, current, target, note, now)
    write_atomically(Path(path), new_text)
    with factory.begin() as s:
        store.ensure_version(s, target, new_text)
        store.record_event(s, "rolled_back", note, None, {"from": current.version, "to": target.version})
    return Rollback(current.version, target.version, changed=True)

"""What the dashboard shows, read from the ledger: plain dicts for the REST API (and for the
Telegram bot's answers). Read-only, never a secret: the same rule as /status."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from trader.domain import split_symbol
from trader.ledger import store
from trader.ledger.models import (
    EquityPoint,
    Event,
    Experiment,
    Position,
    Review,
    StrategyVersion,
)
from trader.status import snapshot
from trader.trades import round_trips

MAX_POINTS = 1500  # equity points sent to a chart; a longer history is thinned evenly
MARKED = ("halted", "resumed", "promoted", "rolled_back")  # events the chart marks


def overview(session, book: str) -> dict:
    """The status snapshot, the strategy's YAML, the approvals and the latest goals scorecard."""
    out = snapshot(session, book)
    version = out.get("strategy_version")
    row = session.get(StrategyVersion, version) if version else None
    out["strategy_name"] = row.name if row else None
    out["strategy"] = row.strategy if row else None
    out["strategy_yaml"] = row.yaml_text if row else None
    out["approvals"] = approvals(session, version)
    out["last_event_id"] = session.scalar(select(func.max(Event.id))) or 0
    latest = session.scalars(select(Review).order_by(Review.id.desc())).first()
    card = (latest.result or {}).get("scorecard") if latest else None
    out["scorecard"] = {"review_id": latest.id, "time": latest.time, "verdict": latest.verdict,
                        "goals": card.get("goals", []), "metrics": card.get("metrics", {})} if card else None
    return out


def approvals(session, version: str | None) -> dict:
    """What is approved and how: live trading (always from the command line) and Hermes' mode."""
    live = store.latest_approval(session, "live")
    hermes = store.latest_approval(session, "hermes_apply")
    return {
        "live": None if live is None else {
            "strategy_version": live.strategy_version, "at": live.created_at,
            "covers_current": live.strategy_version == version,
            "how": (live.detail or {}).get("by") or "trader approve --live"},
        "hermes": "read_only" if hermes is None else "apply",
        "hermes_detail": None if hermes is None else {
            "at": hermes.created_at, "live_inherits": bool((hermes.detail or {}).get("live")),
            "how": (hermes.detail or {}).get("by") or "hermes approve"},
    }


def trades(session, book: str) -> list[dict]:
    position = session.get(Position, book)
    if position is None:
        return []
    base = split_symbol(position.symbol)[0]
    return [t.to_dict() for t in reversed(round_trips(store.fills_of(session, book), base))]


def equity(session, book: str) -> dict:
    """Equity and drawdown over time (thinned to MAX_POINTS), fills and halts to mark on it."""
    points = list(session.execute(select(EquityPoint.time, EquityPoint.equity).where(EquityPoint.book == book)
                                  .order_by(EquityPoint.time)))
    step = max(1, -(-len(points) // MAX_POINTS))
    peak, series = 0.0, []
    for i, (when, value) in enumerate(points):
        peak = max(peak, value)
        if i % step == 0 or i == len(points) - 1:
            series.append({"time": when, "equity": value, "drawdown": 1.0 - value / peak if peak > 0 else 0.0})
    fills = [{"time": f.time, "side": f.side, "price": f.price, "amount": f.amount, "reason": f.reason}
             for f in store.fills_of(session, book)]
    marks = [{"time": e.time, "kind": e.kind, "message": e.message}
             for e in session.scalars(select(Event).where(Event.kind.in_(MARKED)).order_by(Event.id))
             if e.book in (book, None)]
    return {"points": series, "fills": fills, "events": marks}


def reviews(session) -> list[dict]:
    return [{"id": r.id, "time": r.time, "mode": r.mode, "strategy_version": r.strategy_version,
             "verdict": r.verdict, "decision": r.decision, "weakest": r.weakest,
             "has_chart": chart_path(r) is not None}
            for r in session.scalars(select(Review).order_by(Review.id.desc()))]


def review(session, review_id: int) -> dict | None:
    row = session.get(Review, review_id)
    if row is None:
        return None
    from markdown_it import MarkdownIt  # rich's Markdown parser; raw HTML in a report stays text

    chart = f"/api/reviews/{row.id}/chart.png" if chart_path(row) else None
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    # the report links its chart by file name, beside it on disk: here it is the API's address
    md.renderer.rules["image"] = lambda *_: f'<img src="{chart}" alt="review chart">' if chart else ""
    html = md.render(row.report_markdown or "")
    return {"id": row.id, "time": row.time, "mode": row.mode, "verdict": row.verdict, "decision": row.decision,
            "strategy_version": row.strategy_version, "markdown": row.report_markdown, "html": html,
            "chart": chart}


def chart_path(row: Review) -> Path | None:
    """The review's chart, beside its report (the path is the ledger's, never the client's)."""
    if not row.report_path:
        return None
    path = Path(row.report_path).with_suffix(".png")
    return path if path.is_file() else None


def versions(session) -> dict:
    rows = session.scalars(select(StrategyVersion).order_by(StrategyVersion.created_at.desc()))
    experiments = session.scalars(select(Experiment).order_by(Experiment.id.desc()))
    return {
        "versions": [{"version": v.version, "name": v.name, "strategy": v.strategy, "created_at": v.created_at,
                      "yaml": v.yaml_text} for v in rows],
        "experiments": [{"id": e.id, "variable": e.variable, "from": e.baseline_value, "to": e.value,
                         "status": e.status, "claim": e.metric, "statistic": e.statistic,
                         "baseline": e.baseline_version, "challenger": e.challenger_version,
                         "started_at": e.started_at, "decided_at": e.decided_at, "cycles": e.cycles,
                         "e_value": (e.evidence or {}).get("e_value"),
                         "needed": (1 / e.alpha) if e.alpha else None, "evidence": e.evidence,
                         "rationale": e.rationale} for e in experiments],
    }


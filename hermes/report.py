"""The weekly review as files a trader reads: Markdown (with an equity chart) and JSON.

The Markdown is for people, the JSON for tools (it round-trips to `CycleResult`). Text that may
come from a language model (the proposal's rationale) or from data is escaped before it lands
in Markdown or in the terminal, so it can never add links, images, headings, tables or HTML.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from trader.files import write_atomically
from trader.goals import POLARITY

from .scoring import measured
from .types import CycleResult, ExperimentDecision, GoalScore, Proposal, Scorecard

FORMAT = "hermes-review/1"
NA = "n/a"
RATIONALE_LIMIT = 4000  # characters shown in Markdown; the JSON keeps the full text

LABELS = {
    "monthly_return": "monthly return", "total_return": "total return", "cagr": "CAGR",
    "sharpe": "Sharpe", "sortino": "Sortino", "win_rate": "win rate",
    "profit_factor": "profit factor", "max_drawdown": "max drawdown", "trades": "trades",
    "exposure": "exposure", "final_equity": "final equity",
}
PERCENT = {"monthly_return", "total_return", "cagr", "max_drawdown", "win_rate", "exposure"}
STATUS = {"met": "✅ met", "not_yet": "⏳ not yet", "failing": "❌ FAILING", "no_verdict": "➖ no verdict"}
RICH_STATUS = {"met": "green", "not_yet": "yellow", "failing": "bold red", "no_verdict": "dim"}
MODES = {"read_only": "read-only", "apply": "apply"}
# The evidence dict comes from the experiment statistics; these keys get friendly labels and
# lead the table, in this order. Anything else follows under its own name.
EVIDENCE = {
    # the evidence of reviews written before the sequential test (kept readable)
    "n_bars": "bars compared", "bars": "bars compared", "mean_diff": "mean difference", "p_value": "p-value",
    "alpha_adjusted": "adjusted alpha", "variants": "variants tried", "variants_tried": "variants tried",
    "claim": "claim (goal metric)", "statistic": "paired statistic", "effect": "effect",
    "n": "bars compared (held-out + forward)", "forward_bars": "forward bars", "prior_bars": "held-out bars",
    "days": "days of shadow trading", "mean_statistic": "mean statistic per bar",
    "e_value": "e-value (evidence for the claim)", "threshold": "e-value needed (1/alpha)",
    "alpha": "level alpha", "adjusted_alpha": "adjusted alpha", "e_value_worse": "e-value of harm", "reject_threshold": "harm needed to reject",
}


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    json: Path
    chart: Path | None


# ---------------------------------------------------------------- escaping and formatting

# One pass, char by char, so an escape is never escaped twice. HTML-significant characters
# become entities; Markdown inline syntax gets a backslash (valid CommonMark for any ASCII
# punctuation).
_INLINE = {
    "\\": "\\\\", "`": "\\`", "*": "\\*", "_": "\\_", "[": "\\[", "]": "\\]", "|": "\\|",
    "~": "\\~", "&": "&amp;", "<": "&lt;", ">": "&gt;",
}
# Block syntax only counts at a line start, and mostly only before a space: "-5%" or "#1" stay
# as written, "- item", "# title", "1. item", "===" and "- - -" get escaped.
_BLOCK_START = re.compile(r"^(?=#{1,6}(?:\s|$)|[-+](?:\s|$)|[-=]+\s*$)")
_ORDERED = re.compile(r"^(\d{1,9})([.)])(?=\s|$)")
_SCHEME = re.compile(r"://")
_WWW = re.compile(r"(www)\.", re.IGNORECASE)
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def escape_markdown(text: str) -> str:
    """Plain text, safe to embed in Markdown: it renders as the same words and nothing else.

    Neutralises links and images (brackets), raw HTML (entities), headings, lists, block
    quotes and setext underlines (line starts), tables (pipes), code and emphasis, and bare
    URLs that GitHub would autolink (a zero-width space after "://" or "www")."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    # Control and bidi-override characters could hide or reorder what the reader sees.
    text = "".join(ch for ch in text if ch == "\n" or (unicodedata.category(ch) != "Cc" and ch not in _BIDI))
    lines = []
    for line in text.split("\n"):
        line = "".join(_INLINE.get(ch, ch) for ch in line.strip())  # indentation would make code blocks
        line = _BLOCK_START.sub(r"\\", line)
        line = _ORDERED.sub(r"\1\\\2", line)
        line = _WWW.sub("\\1\u200b.", _SCHEME.sub(":\u200b//", line))
        lines.append(line)
    return "\n".join(lines)


def _cell(text: Any) -> str:
    """A table cell: escaped and on one line."""
    return NA if text is None else " ".join(escape_markdown(str(text)).split("\n")).strip() or NA


def label(metric: str) -> str:
    return LABELS.get(metric, metric.replace("_", " "))


def format_metric(metric: str, value: float | None) -> str:
    if value is None:
        return NA
    if metric in PERCENT:
        return f"{value * 100:,.2f}%"
    if metric == "trades":
        return f"{int(value):,}"
    return f"{value:,.2f}"


def format_number(value: Any) -> str:
    """A variable's value or a statistic: as short as exact allows (20, 0.5, 0.0012)."""
    if value is None:
        return NA
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"
    return str(value)


def target(goal: GoalScore) -> str:
    """The goal's direction in words a trader reads: success is met at ≥ (or ≤ when lower is
    better); failure is breached beyond the threshold, so it reads "fail if < / >"."""
    higher_is_better = POLARITY.get(goal.metric, +1) > 0
    threshold = format_metric(goal.metric, goal.threshold)
    if goal.kind == "success":
        return f"{'≥' if higher_is_better else '≤'} {threshold}"
    return f"fail if {'<' if higher_is_better else '>'} {threshold}"


def _utc(time: datetime) -> datetime:
    return time.replace(tzinfo=timezone.utc) if time.tzinfo is None else time.astimezone(timezone.utc)


def report_stem(result: CycleResult) -> str:
    """2026-11-25T0600Z-review-42, or ...-review-dry when the cycle recorded nothing."""
    ident = "dry" if result.review_id is None else str(result.review_id)
    return f"{_utc(result.time):%Y-%m-%dT%H%MZ}-review-{ident}"


def _nothing_measured(card: Scorecard) -> str:
    return (f"nothing could be measured: the ledger has no equity points in the last {card.window_days} days "
            "(the daemon did not trade this book then), so no goal is scored")


def _weakest(card: Scorecard) -> GoalScore | None:
    return next((g for g in card.goals if g.kind == "success" and g.metric == card.weakest), None)


def _proposal_line(p: Proposal | None) -> str:
    if p is None:
        return "none"
    return f"{p.variable} {format_number(p.baseline_value)} → {format_number(p.value)}"


def _status(goal: GoalScore) -> str:
    """Nothing measured is "no data", never "met"."""
    return "➖ no data" if goal.value is None else STATUS[goal.status]


def _proposals(result: CycleResult) -> tuple[Proposal, ...]:
    return result.proposals or ((result.proposal,) if result.proposal is not None else ())


def _decision_line(d: ExperimentDecision, mode: str) -> str:
    if d.action == "none":
        return "none"
    return f"{d.action} ({'applied' if d.applied else MODES.get(mode, mode)})"


def _ordered_metrics(*dicts: dict[str, Any]) -> list[str]:
    keys = {k for d in dicts for k in d}
    known = [k for k in LABELS if k in keys]
    return known + sorted(keys - set(known))


def _evidence_rows(evidence: dict[str, Any]) -> list[tuple[str, str]]:
    order = list(dict.fromkeys(EVIDENCE.values()))
    known = sorted((k for k in evidence if k in EVIDENCE), key=lambda k: order.index(EVIDENCE[k]))
    rest = [k for k in evidence if k not in EVIDENCE]
    rows = []
    for key in known + rest:
        value = evidence[key]
        shown = format_number(value) if isinstance(value, (int, float, bool)) or value is None \
            else json.dumps(value, default=str) if isinstance(value, (list, dict)) else str(value)
        rows.append((EVIDENCE.get(key, key.replace("_", " ")), shown))
    return rows


# ---------------------------------------------------------------- Markdown

def render_markdown(result: CycleResult, chart_name: str | None) -> str:
    card, d = result.scorecard, result.decision
    mode = MODES.get(result.mode, result.mode)
    out: list[str] = []
    add = out.append

    add(f"# Hermes weekly review: {_utc(result.time):%Y-%m-%d %H:%M} UTC")
    add("")
    version = re.sub(r"[^\w.:-]", "", result.strategy_version) or NA  # a content hash; nothing else belongs in a code span
    add(f"Strategy version `{version}` · mode: **{mode}**"
        + (f" · review #{result.review_id}" if result.review_id is not None else " · dry run (not recorded)"))
    add("")
    add(f"**Summary:** verdict {STATUS[card.verdict]} · decision: {_cell(_decision_line(d, result.mode))}"
        f" · proposals: {_cell(', '.join(_proposal_line(q) for q in _proposals(result)) or 'none')}")
    add("")

    add("## Scorecard against your goals")
    add("")
    add("| goal | kind | target | observed | status |")
    add("|---|---|---|---:|---|")
    for g in card.goals:
        add(f"| {_cell(label(g.metric))} | {g.kind} | {target(g)} | {format_metric(g.metric, g.value)} "
            f"| {_status(g)} |")
    add("")
    add(f"**Verdict: {STATUS[card.verdict]}**")
    add("")
    weak = _weakest(card)
    if weak is not None:
        add(f"Weakest goal: **{_cell(label(weak.metric))}** ({format_metric(weak.metric, weak.value)}, "
            f"target {target(weak)}): the furthest from its target"
            + (", which new experiments aim at." if card.verdict != "failing" else
               "; while a failure threshold is breached, new experiments aim at that one first."))
    elif card.weakest:
        add(f"Weakest goal: **{_cell(label(card.weakest))}**.")
    elif not measured(card):
        nothing = _nothing_measured(card)
        add(f"Weakest goal: n/a. {nothing[:1].upper()}{nothing[1:]}; the proposals come from the walk-forward "
            "backtests on the candles alone, and this review does not count as the read-only review that "
            "`hermes approve` needs.")
    else:
        add("Weakest goal: n/a (every measurable success goal is met).")
    add("")
    add(f"| metric | last 7 days | last {card.window_days} days |")
    add("|---|---:|---:|")
    for key in _ordered_metrics(card.last_week, card.metrics):
        add(f"| {_cell(label(key))} | {format_metric(key, card.last_week.get(key))} "
            f"| {format_metric(key, card.metrics.get(key))} |")
    add("")
    realised = NA if card.slippage_realised is None else f"{card.slippage_realised * 1e4:.1f} bps"
    add(f"- Trades: {card.trades:,}")
    add(f"- Fees paid: {card.fees_paid:,.2f} (quote currency)")
    add(f"- Slippage: realised {realised} vs modeled {card.slippage_modeled * 1e4:.1f} bps")
    add("")

    if result.halted:
        add("## Halted")
        add("")
        add(f"The main book is halted: {_cell(result.halted)}. The experiments keep trading on paper in their "
            "shadow books, so Hermes goes on learning while no money is at risk.")
        add("")
    if result.fix is not None:
        f = result.fix
        add("## Proposed fix")
        add("")
        what = (f"promote experiment #{f.experiment_id}: {_cell(f.variable)} → {format_number(f.value)}"
                if f.action == "promote" else f"roll back to version {_cell(f.challenger_version or NA)}")
        add(f"**{what}**" + (" (trader resume applies it; trader resume --keep resumes without it)"
                             if result.mode == "apply" and f.challenger_version else ""))
        add("")
        add(f"Reason: {_cell(f.reason)}")
        add("")
        if f.action == "rollback" and f.evidence.get("current"):
            add(f"Over the last {f.evidence.get('window_days')} days (backtests), what each would have done:")
            add("")
            add("| version | total return | Sharpe | max drawdown |")
            add("|---|---:|---:|---:|")
            for name in ("current", "rollback"):
                m = f.evidence.get(name) or {}
                add(f"| {name} | {format_metric('total_return', m.get('total_return'))} "
                    f"| {format_number(m.get('sharpe'))} | {format_metric('max_drawdown', m.get('max_drawdown'))} |")
            add("")

    add("## Experiments")
    add("")
    add(f"**Decision: {d.action}**" + (f" (experiment #{d.experiment_id})" if d.experiment_id is not None else ""))
    add("")
    add(f"Reason: {_cell(d.reason)}")
    add("")
    if d.variable is not None or d.challenger_version is not None:
        add(f"- Change: {_cell(d.variable)} = {format_number(d.value)}")
        add(f"- Baseline {_cell(d.baseline_version)} vs challenger {_cell(d.challenger_version)}")
        add("")
    if d.evidence.get("why"):
        add(f"Tested with {_cell(d.evidence['why'])}.")
        add("")
    rows = [(n, v) for n, v in _evidence_rows(d.evidence) if n not in ("why", "challenger", "control")]
    for side in ("challenger", "control"):
        shown = d.evidence.get(side)
        if isinstance(shown, dict):
            rows.append((f"{side} (forward)", ", ".join(f"{label(k)} {format_metric(k, v)}" for k, v in shown.items())))
    if rows:
        add("| evidence | value |")
        add("|---|---:|")
        for name, value in rows:
            add(f"| {_cell(name)} | {_cell(value)} |")
        add("")
    if d.action != "none":
        add("**applied**" if d.applied else
            ("read-only: recorded as what would have happened" if result.mode == "read_only"
             else "nothing applied this cycle"))
        add("")
    if len(result.decisions) > 1:
        add("Every experiment judged this cycle:")
        add("")
        add("| # | change | claim | decision | e-value | needed | forward bars | days |")
        add("|---:|---|---|---|---:|---:|---:|---:|")
        for x in result.decisions:
            e = x.evidence
            add(f"| {x.experiment_id if x.experiment_id is not None else NA} "
                f"| {_cell(x.variable or NA)} → {format_number(x.value)} | {_cell(label(e.get('claim', NA)))} "
                f"| {_cell(_decision_line(x, result.mode))} | {format_number(e.get('e_value'))} "
                f"| {format_number(e.get('threshold'))} | {format_number(e.get('forward_bars'))} "
                f"| {format_number(e.get('days'))} |")
        add("")
        for x in result.decisions:
            if x is not d:
                add(f"- #{x.experiment_id} {_cell(x.action)}: {_cell(x.reason)}")
        add("")

    add("## Proposals")
    add("")
    screening = result.screening or {}
    if screening.get("candidates"):
        folds = screening.get("folds") or []
        add(f"Screening: {screening['candidates']:,} candidates backtested walk-forward on {len(folds) - 1} folds "
            f"(chosen on those), {screening.get('qualified', 0):,} qualified; the last fold "
            f"({_cell(' to '.join(screening.get('holdout') or []))}) was held out and opens each experiment's test. "
            f"Claim of new experiments: {_cell(label(screening.get('metric', NA)))}.")
        add("")
    spend = screening.get("budget")
    if spend:
        add(f"Error budget: {format_number(spend['per_year'])} expected false promotions per year; "
            f"earned {format_number(spend['earned'])} (half a year's in advance), spent "
            f"{format_number(spend['spent'])} (net of what closed experiments gave back), "
            f"available {format_number(spend['available'])}.")
        add("")
    if not _proposals(result):
        add("No proposal this cycle.")
    else:
        add("| variable | from | to | claim | chosen by | candidates tried | new version |")
        add("|---|---:|---:|---|---|---:|---|")
        for q in _proposals(result):
            add(f"| {_cell(q.variable)} | {format_number(q.baseline_value)} | {format_number(q.value)} "
                f"| {_cell(label(q.metric))} | {'Claude' if q.chosen_by == 'claude' else 'rules'} "
                f"| {q.candidates_tried:,} | {_cell(q.version)} |")
        add("")
        for q in _proposals(result):
            add("Rationale:" if len(_proposals(result)) == 1 else
                f"Rationale for {_cell(q.variable)} → {format_number(q.value)}:")
            add("")
            text = q.rationale.strip()
            if len(text) > RATIONALE_LIMIT:
                text = text[:RATIONALE_LIMIT] + " … (truncated; the JSON report has the full text)"
            # A block quote marks it as someone's words; an empty line inside stays in the quote.
            add("\n".join(f"> {line}" if line else ">" for line in escape_markdown(text or NA).split("\n")))
            add("")
    add("")

    if chart_name:
        add("## Equity")
        add("")
        add(f"![Equity and drawdown, baseline and challenger]({quote(chart_name)})")
        add("")
    return "\n".join(out)


# ---------------------------------------------------------------- JSON

def render_json(result: CycleResult) -> dict:
    return {"format": FORMAT, **result.model_dump(mode="json")}


# ---------------------------------------------------------------- chart

def _drawdown(equity: pd.Series) -> pd.Series:
    return equity / equity.cummax() - 1.0


def draw_chart(baseline: pd.Series, shadows: dict[str, pd.Series] | pd.Series | None, path: Path,
               title: str) -> Path:
    """Equity of the baseline (and each experiment's shadow book) above their drawdowns, as a
    PNG written atomically. A shadow book starts later with its own capital, so it is rebased
    to the baseline's equity at its first bar to make the curves comparable."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    path = Path(path)
    baseline = baseline.dropna().astype(float)
    if len(baseline) == 0:
        raise ValueError("draw_chart: the baseline equity is empty, nothing to plot")
    if isinstance(shadows, pd.Series):
        shadows = {"challenger": shadows}
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    try:
        top.plot(baseline.index, baseline.to_numpy(), label="baseline", color="#1f77b4", linewidth=1.2)
        bottom.plot(baseline.index, _drawdown(baseline).to_numpy() * 100, color="#1f77b4", linewidth=0.9)
        bottom.fill_between(baseline.index, _drawdown(baseline).to_numpy() * 100, 0, color="#1f77b4", alpha=0.2)
        for name, curve in (shadows or {}).items():
            curve = curve.dropna().astype(float)
            if not len(curve) or float(curve.iloc[0]) == 0:
                continue
            anchor = baseline[baseline.index <= curve.index[0]]
            if len(anchor):
                curve = curve / float(curve.iloc[0]) * float(anchor.iloc[-1])
                name = f"{name} (rebased at its start)"
            top.plot(curve.index, curve.to_numpy(), label=name, linewidth=1.1)
            bottom.plot(curve.index, _drawdown(curve).to_numpy() * 100, linewidth=0.8)
        top.set_ylabel("equity")
        top.set_title(title)
        top.legend(loc="upper left")
        top.grid(alpha=0.3)
        bottom.set_ylabel("drawdown %")
        bottom.grid(alpha=0.3)
        fig.tight_layout()
        write_atomically(path, lambda fh: fig.savefig(fh, format="png", dpi=110), binary=True)
    finally:
        plt.close(fig)
    return path


# ---------------------------------------------------------------- files

def write_report(result: CycleResult, reports_dir: Path, baseline_equity: pd.Series,
                 shadows: dict[str, pd.Series] | pd.Series | None = None, chart: bool = True) -> ReportFiles:
    """Chart, JSON, then Markdown (last, so a report never links a chart that is not there).
    The JSON records where its Markdown twin lives (`report_path`)."""
    reports_dir = Path(reports_dir)
    stem = report_stem(result)
    md_path, json_path = reports_dir / f"{stem}.md", reports_dir / f"{stem}.json"
    drawn: Path | None = None
    if chart and len(baseline_equity.dropna()) >= 2:  # one point is not a curve
        title = f"Hermes review {_utc(result.time):%Y-%m-%d}: strategy {result.strategy_version}"
        drawn = draw_chart(baseline_equity, shadows, reports_dir / f"{stem}.png", title)
    result = result.model_copy(update={"report_path": str(md_path)})
    payload = json.dumps(render_json(result), indent=2, ensure_ascii=False) + "\n"
    write_atomically(json_path, lambda fh: fh.write(payload))
    text = render_markdown(result, drawn.name if drawn else None)
    write_atomically(md_path, lambda fh: fh.write(text))
    return ReportFiles(markdown=md_path, json=json_path, chart=drawn)


# ---------------------------------------------------------------- terminal

def render_terminal(result: CycleResult) -> None:
    """The scorecard and the decision as rich tables on stdout. Data goes in as `Text`, so
    brackets in it are never read as rich markup."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    card, d = result.scorecard, result.decision
    console = Console()
    mode = MODES.get(result.mode, result.mode)
    console.print(Text(f"Hermes review {_utc(result.time):%Y-%m-%d %H:%M} UTC · strategy "
                       f"{result.strategy_version} · {mode}", style="bold"))

    goals = Table(title=f"Scorecard (last {card.window_days} days, {card.trades:,} trades)")
    for name, justify in (("goal", "left"), ("kind", "left"), ("target", "left"),
                          ("observed", "right"), ("status", "left")):
        goals.add_column(name, justify=justify)  # type: ignore[arg-type]
    for g in card.goals:
        goals.add_row(Text(label(g.metric)), g.kind, target(g), format_metric(g.metric, g.value),
                      Text(_status(g), style=RICH_STATUS[g.status]))
    console.print(goals)
    weakest = label(card.weakest) if card.weakest else NA
    if not measured(card):
        weakest += f" ({_nothing_measured(card)})"
    verdict = Text("verdict: ")
    verdict.append(STATUS[card.verdict], style=RICH_STATUS[card.verdict])
    verdict.append(f" · weakest goal: {weakest}")
    console.print(verdict)

    decision = Table(title="Experiment decision", show_header=False)
    decision.add_column("field")
    decision.add_column("value")
    decision.add_row("action", Text(d.action, style="bold"))
    decision.add_row("reason", Text(d.reason))
    for name, value in _evidence_rows(d.evidence):
        decision.add_row(Text(name), Text(value))
    if d.action != "none":
        decision.add_row("applied", "yes" if d.applied else
                         ("no (read-only: what would have happened)" if result.mode == "read_only" else "no"))
    decision.add_row("proposals", Text(", ".join(f"{_proposal_line(q)} (claim {label(q.metric)}, by {q.chosen_by})"
                                                  for q in _proposals(result)) or "none"))
    if result.fix is not None:
        decision.add_row("proposed fix", Text(f"{result.fix.action} {result.fix.challenger_version or ''}: "
                                              f"{result.fix.reason}"))
    console.print(decision)

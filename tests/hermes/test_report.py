"""The weekly report: Markdown a trader reads, JSON that round-trips, a real PNG, and model text
that cannot inject Markdown or HTML."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hermes.report import (
    FORMAT,
    ReportFiles,
    draw_chart,
    escape_markdown,
    render_json,
    render_markdown,
    render_terminal,
    write_report,
)
from hermes.types import CycleResult, ExperimentDecision, GoalScore, Proposal, Scorecard

WHEN = datetime(2026, 11, 25, 6, 0, tzinfo=timezone.utc)
METRICS = {"total_return": 0.0812, "cagr": 0.35, "monthly_return": 0.0214, "sharpe": 1.234,
           "sortino": 1.8, "max_drawdown": 0.081, "trades": 42, "win_rate": 0.55,
           "profit_factor": 1.42, "final_equity": 10812.0}
LAST_WEEK = {"total_return": -0.0123, "sharpe": 0.5, "max_drawdown": 0.03, "trades": 4,
             "win_rate": None, "monthly_return": None}


def card(verdict: str = "not_yet", goals: tuple[GoalScore, ...] | None = None) -> Scorecard:
    goals = goals or (
        GoalScore(metric="monthly_return", kind="success", threshold=0.03, value=0.0214, status="not_yet", shortfall=0.29),
        GoalScore(metric="sharpe", kind="success", threshold=1.5, value=1.234, status="not_yet", shortfall=0.18),
        GoalScore(metric="max_drawdown", kind="success", threshold=0.10, value=0.081, status="met", shortfall=0.0),
        GoalScore(metric="max_drawdown", kind="failure", threshold=0.15, value=0.081, status="met", shortfall=0.0),
        GoalScore(metric="sharpe", kind="failure", threshold=0.0, value=1.234, status="met", shortfall=0.0),
        GoalScore(metric="monthly_return", kind="failure", threshold=-0.02, value=None, status="met", shortfall=0.0),
    )
    return Scorecard(window_days=90, metrics=METRICS, last_week=LAST_WEEK, goals=goals, verdict=verdict,
                     weakest="monthly_return", trades=42, fees_paid=12.3456, slippage_realised=0.00061,
                     slippage_modeled=0.0005)


def proposal(rationale: str = "Slower exits held winners longer in 5 of 6 folds.") -> Proposal:
    return Proposal(variable="slow_window", value=60.0, baseline_value=50.0, version="v-b2c3",
                    rationale=rationale, chosen_by="claude", candidates_tried=6)


@pytest.fixture
def read_only() -> CycleResult:
    return CycleResult(review_id=None, time=WHEN, mode="read_only", strategy_version="a1b2c3d4",
                       scorecard=card(), decision=ExperimentDecision(experiment_id=None, action="none",
                                                                     reason="no experiment running"),
                       proposal=proposal())


@pytest.fixture
def promoted() -> CycleResult:
    decision = ExperimentDecision(
        experiment_id=7, action="promote", reason="challenger beat baseline out of sample",
        baseline_version="a1b2c3d4", challenger_version="e5f6a7b8", variable="fast_window", value=12.0,
        evidence={"n_bars": 1344, "mean_diff": 0.000123, "p_value": 0.0042, "alpha_adjusted": 0.0083, "variants": 6,
                  "method": "paired t-test"},
        applied=True)
    return CycleResult(review_id=12, time=WHEN, mode="apply", strategy_version="e5f6a7b8",
                       scorecard=card("met"), decision=decision, proposal=None)


@pytest.fixture
def failing() -> CycleResult:
    goals = (
        GoalScore(metric="sharpe", kind="success", threshold=1.5, value=-0.4, status="no_verdict", shortfall=1.27),
        GoalScore(metric="max_drawdown", kind="failure", threshold=0.15, value=0.183, status="failing", shortfall=0.22),
    )
    decision = ExperimentDecision(experiment_id=8, action="rollback", reason="failure threshold breached",
                                  baseline_version="a1b2c3d4", challenger_version="c0ffee00",
                                  variable="stop_loss", value=0.05, evidence={"p_value": None}, applied=False)
    return CycleResult(review_id=13, time=WHEN, mode="read_only", strategy_version="c0ffee00",
                       scorecard=card("failing", goals), decision=decision,
                       proposal=Proposal(variable="stop_loss", value=0.03, baseline_value=None, version="v-x",
                                         rationale="Tighter stop.", chosen_by="rules", candidates_tried=4))


def equity(n: int = 500, seed: int = 1, start: str = "2026-08-27") -> pd.Series:
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=n, freq="h", tz="UTC")
    return pd.Series(10_000 * np.cumprod(1 + rng.normal(0.0002, 0.004, n)), index=index)


def row(md: str, *cells: str) -> bool:
    """Is there a table row starting with these cells?"""
    prefix = "| " + " | ".join(cells) + " |"
    return any(line.startswith(prefix) for line in md.splitlines())


# ---------------------------------------------------------------- Markdown

def test_read_only_without_experiment(read_only: CycleResult) -> None:
    md = render_markdown(read_only, None)
    assert md.startswith("# Hermes weekly review: 2026-11-25 06:00 UTC")
    assert "`a1b2c3d4`" in md and "mode: **read-only**" in md and "dry run" in md
    summary = next(line for line in md.splitlines() if line.startswith("**Summary:**"))
    assert "⏳ not yet" in summary and "decision: none" in summary and "slow\\_window 50 → 60" in summary
    # success: >= (<= for drawdown); failure: < (> for drawdown); percent vs 2 decimals
    assert row(md, "monthly return", "success", "≥ 3.00%", "2.14%", "⏳ not yet")
    assert row(md, "Sharpe", "success", "≥ 1.50", "1.23", "⏳ not yet")
    assert row(md, "max drawdown", "success", "≤ 10.00%", "8.10%", "✅ met")
    assert row(md, "max drawdown", "failure", "fail if > 15.00%", "8.10%", "✅ met")
    assert row(md, "Sharpe", "failure", "fail if < 0.00", "1.23", "✅ met")
    assert row(md, "monthly return", "failure", "fail if < -2.00%", "n/a", "➖ no data")  # nothing measured
    assert "Weakest goal: **monthly return** (2.14%, target ≥ 3.00%): the furthest from its target, which new " \
        "experiments aim at." in md
    # last week vs lookback window, None as n/a
    assert "| metric | last 7 days | last 90 days |" in md
    assert row(md, "total return", "-1.23%", "8.12%")
    assert row(md, "win rate", "n/a", "55.00%")
    assert row(md, "trades", "4", "42")
    assert row(md, "profit factor", "n/a", "1.42")
    assert "- Trades: 42" in md and "Fees paid: 12.35" in md
    assert "realised 6.1 bps vs modeled 5.0 bps" in md
    assert "**Decision: none**" in md and "no experiment running" in md
    assert "read-only: recorded" not in md and "**applied**" not in md  # nothing happened to record
    assert row(md, "slow\\_window", "50", "60", "Sharpe", "Claude", "6", "v-b2c3")
    assert "> Slower exits held winners longer in 5 of 6 folds." in md
    assert "![" not in md  # no chart


def test_apply_mode_promotion(promoted: CycleResult) -> None:
    md = render_markdown(promoted, "2026-11-25T0600Z-review-12.png")
    assert "review #12" in md and "mode: **apply**" in md
    assert "**Verdict: ✅ met**" in md
    assert "**Decision: promote** (experiment #7)" in md
    assert "Reason: challenger beat baseline out of sample" in md
    assert "- Change: fast\\_window = 12" in md
    assert row(md, "bars compared", "1,344")
    assert row(md, "mean difference", "0.000123")
    assert row(md, "p-value", "0.0042")
    assert row(md, "adjusted alpha", "0.0083")
    assert row(md, "variants tried", "6")
    assert row(md, "method", "paired t-test")
    lines = md.splitlines()
    order = [next(i for i, l in enumerate(lines) if l.startswith(f"| {k} |"))
             for k in ("bars compared", "mean difference", "p-value", "adjusted alpha", "variants tried", "method")]
    assert order == sorted(order)
    assert "**applied**" in md and "read-only" not in md
    assert "No proposal this cycle." in md
    assert "![Equity and drawdown, baseline and challenger](2026-11-25T0600Z-review-12.png)" in md


def test_failing_verdict_with_rollback(failing: CycleResult) -> None:
    md = render_markdown(failing, None)
    assert "**Verdict: ❌ FAILING**" in md
    assert row(md, "max drawdown", "failure", "fail if > 15.00%", "18.30%", "❌ FAILING")
    assert row(md, "Sharpe", "success", "≥ 1.50", "-0.40", "➖ no verdict")
    assert "**Decision: rollback**" in md
    assert row(md, "p-value", "n/a")
    assert "read-only: recorded as what would have happened" in md
    assert row(md, "stop\\_loss", "n/a", "0.03", "Sharpe", "rules", "4")


# ---------------------------------------------------------------- escaping

HOSTILE = ("![x](http://evil)\n<script>alert(1)</script>\n# heading\n| a | b |\n|---|---|\n"
           "[link](javascript:alert(1))\nsetext\n===\n    indented code\n1. item\n- bullet\n> quote\n"
           "see www.evil.com and `code` **bold** <img src=x onerror=alert(1)> &amp; \\[x]")


def test_escape_markdown_neutralises_syntax() -> None:
    out = escape_markdown(HOSTILE)
    assert "<" not in out and ">" not in out.replace("&gt;", "")  # no raw HTML at all
    assert "&lt;script&gt;" in out and "&amp;amp;" in out
    assert not re.search(r"(?<!\\)\[", out) and not re.search(r"(?<!\\)\]", out)  # no link/image brackets
    assert not re.search(r"(?<!\\)\|", out)  # no table cells
    assert not re.search(r"(?<!\\)`", out)
    for line in out.splitlines():
        assert not re.match(r"\s*(#|=|-|\+|>|\d+[.)]|\s{4})", line), line  # no block syntax at a line start
    assert "http:\u200b//evil" in out and "www\u200b.evil" in out  # no bare autolinks
    assert "\\\\\\[x\\]" in out  # a backslash in the text cannot un-escape a bracket


def test_escape_markdown_keeps_plain_words() -> None:
    text = "Raise the slow window from 50 to 60: 5 of 6 folds improved, Sharpe 1.2 -> 1.4!"
    out = escape_markdown(text)
    assert out == "Raise the slow window from 50 to 60: 5 of 6 folds improved, Sharpe 1.2 -&gt; 1.4!"
    assert escape_markdown("a\r\nb\x00c\u202ed") == "a\nbcd"
    # block markers only where they would act: numbers and tags at a line start stay as written
    assert escape_markdown("-5% on #1\n0.25 of it\n1. step\n#title\n## title\n---") == \
        "-5% on #1\n0.25 of it\n1\\. step\n#title\n\\## title\n\\---"


def test_hostile_rationale_is_quoted_and_inert(read_only: CycleResult) -> None:
    result = read_only.model_copy(update={"proposal": proposal(HOSTILE)})
    md = render_markdown(result, None)
    quoted = md.split("Rationale:\n\n", 1)[1].split("\n\n", 1)[0]
    assert all(line.startswith(">") for line in quoted.splitlines())
    assert "<script>" not in md and "<img" not in md
    assert not re.search(r"(?<!\\)\]\(", md) and "![x]" not in md  # no link or image syntax
    assert not any(line.startswith("#") for line in md.splitlines()
                   if not line.startswith(("# Hermes", "## ")))
    assert "| a | b |" not in md


def test_reason_and_evidence_text_are_escaped(promoted: CycleResult) -> None:
    d = promoted.decision.model_copy(update={"reason": "[click](http://evil) | x\n# h",
                                             "evidence": {"note": "<b>|</b>"}})
    md = render_markdown(promoted.model_copy(update={"decision": d}), None)
    assert "[click]" not in md and "<b>" not in md
    assert "Reason: \\[click\\](http:\u200b//evil) \\| x \\# h" in md


# ---------------------------------------------------------------- JSON, chart, files

@pytest.mark.parametrize("name", ["read_only", "promoted", "failing"])
def test_json_round_trips(name: str, request: pytest.FixtureRequest) -> None:
    result: CycleResult = request.getfixturevalue(name)
    doc = json.loads(json.dumps(render_json(result)))
    assert doc["format"] == FORMAT == "hermes-review/1"
    assert CycleResult.model_validate({k: v for k, v in doc.items() if k != "format"}) == result


def test_chart_is_a_png(tmp_path: Path) -> None:
    path = draw_chart(equity(), equity(200, seed=2, start="2026-09-10") * 1.3, tmp_path / "c.png", "test")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
    assert [p.name for p in tmp_path.iterdir()] == ["c.png"]  # no temp file left behind
    alone = draw_chart(equity(), None, tmp_path / "b.png", "baseline only")
    assert alone.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="empty"):
        draw_chart(pd.Series(dtype=float), None, tmp_path / "e.png", "empty")


def test_write_report_files(promoted: CycleResult, read_only: CycleResult, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    replaced: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src, dst):
        replaced.append((str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    reports = tmp_path / "deep" / "reports"  # created on demand
    files = write_report(promoted, reports, equity(), equity(100, seed=3, start="2026-09-10"))
    assert isinstance(files, ReportFiles)
    stem = "2026-11-25T0600Z-review-12"
    assert (files.markdown.name, files.json.name, files.chart.name) == (f"{stem}.md", f"{stem}.json", f"{stem}.png")
    assert sorted(p.name for p in reports.iterdir()) == sorted([f"{stem}.md", f"{stem}.json", f"{stem}.png"])
    # every file arrived by a rename from a temp file in the same directory
    assert {Path(dst).name for _, dst in replaced} == {f"{stem}.md", f"{stem}.json", f"{stem}.png"}
    assert all(Path(src).parent == reports and Path(src).name.startswith(".") for src, _ in replaced)
    assert f"]({stem}.png)" in files.markdown.read_text(encoding="utf-8")
    doc = json.loads(files.json.read_text(encoding="utf-8"))
    assert doc["format"] == FORMAT and doc["report_path"] == str(files.markdown)
    assert CycleResult.model_validate({k: v for k, v in doc.items() if k != "format"}) == \
        promoted.model_copy(update={"report_path": str(files.markdown)})

    dry = write_report(read_only, reports, equity(1), None)  # one point: no chart
    assert dry.markdown.name == "2026-11-25T0600Z-review-dry.md" and dry.chart is None
    assert "![" not in dry.markdown.read_text(encoding="utf-8")


def test_failed_write_leaves_nothing(read_only: CycleResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_report(read_only, tmp_path, equity(1), None)
    assert list(tmp_path.iterdir()) == []


def test_naive_time_is_utc(read_only: CycleResult, tmp_path: Path) -> None:
    naive = read_only.model_copy(update={"time": datetime(2026, 11, 25, 6, 0), "review_id": 3})
    assert write_report(naive, tmp_path, equity(1), None).markdown.name == "2026-11-25T0600Z-review-3.md"


# ---------------------------------------------------------------- terminal

def test_render_terminal(promoted: CycleResult, failing: CycleResult, capsys: pytest.CaptureFixture[str]) -> None:
    render_terminal(failing)
    out = capsys.readouterr().out
    assert "verdict: ❌ FAILING" in out and "weakest goal: monthly return" in out
    assert "rollback" in out and "read-only" in out and "18.30%" in out
    hostile = promoted.decision.model_copy(update={"reason": "[bold red]boom[/] [link=http://evil]x[/link]"})
    render_terminal(promoted.model_copy(update={"decision": hostile}))
    out = capsys.readouterr().out
    assert "verdict: ✅ met" in out and "promote" in out and "p-value" in out
    assert "[bold red]boom[/]" in out  # printed as text, not read as rich markup


def test_rendered_html_has_no_injected_elements(read_only: CycleResult) -> None:
    """Render the whole report as a Markdown viewer would (raw HTML allowed, tables on)."""
    markdown_it = pytest.importorskip("markdown_it")  # comes with rich
    result = read_only.model_copy(update={"proposal": proposal(HOSTILE)})
    html = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table").render(render_markdown(result, None))
    assert "<a " not in html and "<img" not in html and "<script" not in html
    assert html.count("<code>") == 1  # the strategy version, nothing from the rationale
    assert html.count("<h1>") == 1 and html.count("<table>") == 3  # scorecard, metrics, proposal
    assert "<h2>" in html and "# heading" in html and "javascript:alert(1)" in html  # shown, inert

"""What a Hermes cycle works with and produces: validated data, never free text that runs.

Shared by the cycle, the proposers (rule-based and Claude), the statistics and the report.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Optional

from pydantic import ConfigDict

from trader.yamlfile import Frozen as BaseFrozen

Status = Literal["met", "not_yet", "failing", "no_verdict"]


class Frozen(BaseFrozen):
    # results, not user input: a ratio of a flawless run may be infinite
    model_config = ConfigDict(allow_inf_nan=True)


class GoalScore(Frozen):
    """One threshold of the Well-Defined Goal against the observed value."""

    metric: str  # e.g. "sharpe"
    kind: Literal["success", "failure"]
    threshold: float
    value: Optional[float]  # None: not measurable yet (no trades, no bars)
    status: Status  # success: met | not_yet; failure: failing | met (not breached)
    shortfall: float  # how far from met, as a fraction of the threshold scale (0 when met)


class Scorecard(Frozen):
    window_days: int
    metrics: dict[str, Optional[float]]  # the baseline's metrics over the lookback window
    last_week: dict[str, Optional[float]]  # the same over the last 7 days
    goals: tuple[GoalScore, ...]
    verdict: Status  # met: every success goal met; failing: a failure threshold breached
    weakest: Optional[str]  # the success metric furthest from its goal (orients the cycle)
    trades: int
    fees_paid: float
    slippage_realised: Optional[float]  # average adverse slippage of market fills, fraction
    slippage_modeled: float


class Candidate(Frozen):
    """One value of one tunable variable, evaluated by walk-forward backtests."""

    variable: str
    value: float
    baseline_value: Optional[float]
    version: str  # strategy version the change would create
    folds: int  # screening folds (the choice is made on these)
    metric: str  # the metric the cycle is trying to move (the weakest goal's)
    improvement: float  # mean change of `metric` against the baseline per screening fold
    folds_better: int  # screening folds in which the candidate beat the baseline on `metric`
    sharpe: float  # the candidate's mean Sharpe over the screening folds (what it was chosen on)
    deflated_sharpe: float  # probability that Sharpe is real given the number of candidates tried
    holdout_improvement: Optional[float] = None  # change of `metric` on the held-out fold
    holdout_sharpe: Optional[float] = None  # the candidate's Sharpe on the held-out fold


class Proposal(Frozen):
    variable: str
    value: float
    baseline_value: Optional[float]
    version: str
    rationale: str
    chosen_by: Literal["rules", "claude"]
    candidates_tried: int
    metric: str = "sharpe"  # the claim: the goal metric the change should improve


class ExperimentDecision(Frozen):
    experiment_id: Optional[int]
    action: Literal["none", "continue", "promote", "reject", "expire", "stop", "rollback"]
    reason: str
    baseline_version: Optional[str] = None
    challenger_version: Optional[str] = None
    variable: Optional[str] = None
    value: Optional[float] = None
    evidence: dict[str, Any] = {}  # bars compared, mean difference, p-value, alpha, ...
    applied: bool = False  # False in read-only mode: what would have happened


class CycleResult(Frozen):
    review_id: Optional[int]
    time: datetime
    mode: Literal["read_only", "apply"]
    strategy_version: str
    scorecard: Scorecard
    decision: ExperimentDecision  # the cycle's headline: a promotion or rollback if any, else the first judged
    proposal: Optional[Proposal]  # the first of `proposals` (kept for readers of one proposal)
    report_path: Optional[str] = None
    decisions: tuple[ExperimentDecision, ...] = ()  # every running experiment judged this cycle
    proposals: tuple[Proposal, ...] = ()  # every experiment proposed (started in apply mode)
    halted: Optional[str] = None  # why the main book is halted, if it is
    fix: Optional[ExperimentDecision] = None  # while halted: the change `trader resume` applies
    screening: dict[str, Any] = {}  # the walk-forward: candidates, folds, holdout, multiplicity

"""What `hermes simulate` prints and writes: one JSON object, a Markdown summary and a chart
(equity and drawdown of the three policies, and the path of every tunable over time)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from trader.files import write_atomically

from .report import _cell, escape_markdown, format_metric, format_number, label
from .simulation import SimulationResult

FORMAT = "hermes-simulation/1"
NAMES = {"hermes": "Hermes-evolved", "fixed": "fixed baseline", "reoptimized": "naive weekly re-optimisation"}


def summary(result: SimulationResult, settings: dict[str, Any]) -> dict[str, Any]:
    """The JSON object: counts, each policy's metrics from the first review on, promotions."""
    metrics = result.metrics()
    out: dict[str, Any] = {
        "format": FORMAT, **settings,
        "period": {"first_review": result.first_review.isoformat(), "reviews": len(result.cycles),
                   "end": result.equity[next(iter(result.equity))].index[-1].isoformat()},
        "experiments": len(result.experiments),
        "promotions": len(result.promotions),
        "rollbacks": sum(c.rolled_back for c in result.cycles),
        "experiment_outcomes": pd.Series([e["status"] for e in result.experiments], dtype=object)
        .value_counts().to_dict(),
    }
    for policy, m in metrics.items():
        out[policy] = {**m, "breaches": result.breaches.get(policy, 0), "halts": result.halts.get(policy, 0)}
    out["promoted"] = [
        {"time": c.time.isoformat(), "experiment": c.promoted.experiment_id, "variable": c.promoted.variable,
         "from": _before(result, c), "to": c.promoted.value, "claim": c.promoted.evidence.get("claim"),
         "e_value": c.promoted.evidence.get("e_value"), "threshold": c.promoted.evidence.get("threshold"),
         "reason": c.promoted.reason, "at_resume": bool(c.applied_at_resume)} for c in result.promotions]
    out["path"] = [{"time": result.first_review.isoformat(), **_values(result.initial)}] + [
        {"time": c.time.isoformat(), **c.values} for c in result.cycles]
    out["reoptimized_path"] = [{**r, "time": r["time"].isoformat()} for r in result.reoptimized]
    return out


def _values(config) -> dict[str, Any]:
    return {name: config.value_of(name) for name in config.tunable}


def _before(result: SimulationResult, record) -> Any:
    index = result.cycles.index(record)
    values = result.cycles[index - 1].values if index else _values(result.initial)
    return values.get(record.promoted.variable)


def markdown(data: dict[str, Any], chart: str | None) -> str:
    out = [f"# Hermes simulation of {_cell(data.get('data', ''))}", ""]
    out.append(f"Strategy file {_cell(data.get('config', ''))}, goals {_cell(data.get('goals', ''))}. "
               f"{data['period']['reviews']} weekly reviews from {data['period']['first_review'][:16]} to "
               f"{data['period']['end'][:16]}; the first is read-only, apply mode from the second on. "
               "Figures from the first review on, the same bars for every policy.")
    out += ["", "| policy | total return | Sharpe | max drawdown | failing reviews | kill-switch halts |",
            "|---|---:|---:|---:|---:|---:|"]
    for policy in ("hermes", "fixed", "reoptimized"):
        if policy in data:
            m = data[policy]
            out.append(f"| {NAMES[policy]} | {format_metric('total_return', m['total_return'])} "
                       f"| {format_number(m['sharpe'])} | {format_metric('max_drawdown', m['max_drawdown'])} "
                       f"| {m['breaches']} | {m['halts']} |")
    out += ["", f"Experiments: {data['experiments']} ({', '.join(f'{k} {v}' for k, v in data['experiment_outcomes'].items()) or 'none'}); "
                f"promotions: {data['promotions']}; rollbacks applied at a resume: {data['rollbacks']}.", ""]
    if data["promoted"]:
        out += ["## Promotions", "", "| time | experiment | change | claim | e-value | needed |",
                "|---|---:|---|---|---:|---:|"]
        for p in data["promoted"]:
            out.append(f"| {p['time'][:16]} | #{p['experiment']} | {_cell(p['variable'])} {format_number(p['from'])} → "
                       f"{format_number(p['to'])} | {_cell(label(p['claim'] or ''))} | {format_number(p['e_value'])} "
                       f"| {format_number(p['threshold'])} |")
        out.append("")
        for p in data["promoted"]:
            out += [f"- #{p['experiment']}: {escape_markdown(p['reason'])}"]
        out.append("")
    if chart:
        out += ["## Equity, drawdown and parameters", "", f"![policies]({quote(chart)})", ""]
    return "\n".join(out)


def draw(result: SimulationResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result.initial.tunable)
    fig, axes = plt.subplots(2 + len(names), 1, figsize=(11, 6 + 1.2 * len(names)), sharex=True,
                             gridspec_kw={"height_ratios": [3, 1.2] + [0.8] * len(names)})
    try:
        since = pd.Timestamp(result.first_review)
        for policy, curve in result.equity.items():
            part = curve[curve.index >= since]
            if len(part) < 2:
                continue
            axes[0].plot(part.index, part.to_numpy() / part.iloc[0], label=NAMES[policy], linewidth=1.1)
            axes[1].plot(part.index, (part / part.cummax() - 1).to_numpy() * 100, linewidth=0.9)
        axes[0].set_ylabel("equity (x)")
        axes[0].legend(loc="upper left")
        axes[1].set_ylabel("drawdown %")
        times = [result.first_review] + [c.time for c in result.cycles]
        for ax, name in zip(axes[2:], names):
            ax.step(times, result.trajectory(name), where="post", label="Hermes", color="#1f77b4")
            if result.reoptimized:
                ax.step([r["time"] for r in result.reoptimized], [r[name] for r in result.reoptimized],
                        where="post", color="#2ca02c", alpha=0.5, label="re-optimised")
            ax.set_ylabel(name, fontsize=8)
        axes[2].legend(loc="upper left", fontsize=7) if names else None
        for ax in axes:
            ax.grid(alpha=0.3)
        axes[0].set_title("Hermes vs the fixed baseline vs naive weekly re-optimisation")
        fig.tight_layout()
        write_atomically(path, lambda fh: fig.savefig(fh, format="png", dpi=100), binary=True)
    finally:
        plt.close(fig)
    return path


def write(result: SimulationResult, settings: dict[str, Any], reports: Path, stamp: datetime) -> tuple[dict, Path]:
    reports.mkdir(parents=True, exist_ok=True)
    stem = f"{stamp:%Y-%m-%dT%H%M%SZ}-simulation"
    data = summary(result, settings)
    chart = draw(result, reports / f"{stem}.png")
    payload = json.dumps(data, indent=2, default=str) + "\n"
    write_atomically(reports / f"{stem}.json", lambda fh: fh.write(payload))
    text = markdown(data, chart.name)
    write_atomically(reports / f"{stem}.md", lambda fh: fh.write(text))
    data["report"] = str(reports / f"{stem}.md")
    return data, reports / f"{stem}.md"

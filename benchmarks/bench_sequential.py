"""How fast does Hermes' betting test reach its bar, and what does the 8-week rule cost?

    .venv/bin/python benchmarks/bench_sequential.py [--runs 300] [--level 0.0125]

A model of one experiment's paired statistic: on half of the hourly bars the two books differ,
and there the statistic is N(effect / sqrt(0.5), 1), so `effect` is its mean over all bars in
units of its standard deviation (0.065 and 0.045 are what the right experiment showed on the
planted market at drift 0.0005, benchmarks/HERMES.md; 0 is a change with no effect). For each
effect: the share of runs whose e-value (`hermes.sequential.wealth`) reaches 1/level within 8,
16 and 24 weeks, and, for each rule that decides at week 8 whether the experiment runs on,
the share that run on and the share promoted within 24 weeks under that rule.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from hermes.sequential import wealth  # noqa: E402

WEEK = 168


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--level", type=float, default=0.0125)
    ap.add_argument("--effects", type=float, nargs="+", default=[0.065, 0.045, 0.0])
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    n, week8, bar = 24 * WEEK, 8 * WEEK, 1 / args.level
    rules = {"mean > 0": lambda x, k: x[:week8].mean() > 0, "K > 0.5": lambda x, k: k[week8 - 1] > 0.5,
             "K > 1 (shipped)": lambda x, k: k[week8 - 1] > 1.0, "K > 2": lambda x, k: k[week8 - 1] > 2.0}
    print(f"level {args.level:g} (e-value {bar:.0f}), {args.runs} runs per effect")
    print("| effect | crossed by 8 / 16 / 24 weeks | " + " | ".join(f"{r}: run on, promoted by 24 w" for r in rules) + " |")
    print("|---|---|" + "---|" * len(rules))
    for effect in args.effects:
        crossed = np.zeros(3)
        on = dict.fromkeys(rules, 0)
        won = dict.fromkeys(rules, 0)
        for _ in range(args.runs):
            differs = rng.random(n) < 0.5
            x = np.where(differs, rng.normal(effect / np.sqrt(0.5), 1.0, n), 0.0)
            k = wealth(x)
            hit = np.flatnonzero(k >= bar)
            first = hit[0] if hit.size else n
            crossed += [first < week8, first < 16 * WEEK, first < n]
            for name, rule in rules.items():
                goes = bool(rule(x, k))
                on[name] += goes
                won[name] += first < week8 or (goes and first < n)
        cells = " | ".join(f"{on[r] / args.runs:.0%}, {won[r] / args.runs:.0%}" for r in rules)
        print(f"| {effect:g} | " + " / ".join(f"{c / args.runs:.0%}" for c in crossed) + f" | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

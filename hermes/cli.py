"""The `hermes` command: the weekly review (its cycle lands with the Hermes issue)."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hermes",
        description="Hermes reviews the daemon's results every week against your goals and "
        "proposes a change to one strategy variable. Read-only until you approve it.",
    )
    parser.parse_args(argv)
    print("hermes: the review cycle is not part of this release yet; "
          "`trader backtest` and the sweep API are what it will build on.", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())

"""Optional dependencies, installed as extras: `pip install 'hermes-trader[parquet]'` etc.

A feature that needs one that is missing ends with one line naming the extra and the pip
command (MissingExtra is an InputError: exit 2), instead of an ImportError's traceback.
"""

from __future__ import annotations

import importlib

from .errors import InputError

# extra -> (the module it provides, what needs it)
EXTRAS = {
    "parquet": ("pyarrow", "reading Parquet files"),
    "postgres": ("psycopg", "a PostgreSQL ledger (DATABASE_URL)"),
    "claude": ("anthropic", "Claude in Hermes' reviews (ANTHROPIC_API_KEY)"),
}


class MissingExtra(InputError):
    """A feature's optional dependency is not installed."""


def message(extra: str) -> str:
    module, what = EXTRAS[extra]
    return (f"{what} needs the optional dependency {module}, which is not installed: "
            f"pip install 'hermes-trader[{extra}]'")


def require(extra: str):
    """The extra's module, imported; MissingExtra when it is not installed."""
    module, _ = EXTRAS[extra]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(message(extra)) from None

"""The ledger: SQLAlchemy 2 models, migrations, and the session factory."""

from .db import data_dir, database_url, open_ledger, sessions
from .models import MAIN_BOOK

__all__ = ["MAIN_BOOK", "data_dir", "database_url", "open_ledger", "sessions"]

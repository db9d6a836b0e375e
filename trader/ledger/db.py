"""Opening the ledger: SQLite in WAL mode by default, any SQLAlchemy URL via DATABASE_URL,
and Alembic migrations applied on open so an upgrade keeps the data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def data_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the daemon keeps its database and reports: $TRADER_DATA_DIR or ./data."""
    return Path(environ.get("TRADER_DATA_DIR") or "data")


def reports_dir(data: Path, engine: Engine, environ: Mapping[str, str] = os.environ) -> Path:
    """Where Hermes writes a ledger's review reports: `reports/` for the daemon's ledger
    (DATABASE_URL's, or the data directory's trader.db), `reports/<ledger>-<hash>/` for any other
    (a replay's, say), so that two ledgers' review 1 of the same minute never overwrite each other."""
    import hashlib

    from sqlalchemy.engine import make_url

    url = getattr(engine, "engine", engine).url  # a Connection (a replay's batched sessions) knows its Engine
    own = make_url(database_url({**environ, "TRADER_DATA_DIR": str(data)}))
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        path = Path(url.database).resolve()
        if own.get_backend_name() == "sqlite" and own.database and path == Path(own.database).resolve():
            return Path(data) / "reports"
        name, identity = path.stem, str(path)
    elif url.render_as_string(hide_password=False) == own.render_as_string(hide_password=False):
        return Path(data) / "reports"
    else:  # the server and database, never the password
        name, identity = url.database or url.get_backend_name(), url.render_as_string(hide_password=True)
    tag = hashlib.sha256(identity.encode()).hexdigest()[:8]
    return Path(data) / "reports" / f"{name}-{tag}"


def database_url(environ: Mapping[str, str] = os.environ) -> str:
    """The ledger's SQLAlchemy URL: DATABASE_URL's, checked (InputError naming it, exit 2, when
    it cannot be used), or the data directory's SQLite file."""
    url = environ.get("DATABASE_URL")
    if url:
        # Railway and Heroku hand out postgres:// URLs; SQLAlchemy wants a driver name
        if url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url[len("postgres://"):]
        elif url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
        _check_url(url)
        return url
    return f"sqlite:///{data_dir(environ) / 'trader.db'}"


DATABASE_URL_FORM = "sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"


def _check_url(url: str) -> None:
    """DATABASE_URL parsed, of a supported database, with its driver installed; the URL itself
    is never quoted (it holds the password)."""
    from sqlalchemy.engine import make_url

    from ..errors import InputError
    from ..extras import message

    try:
        parsed = make_url(url)
        backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    except Exception:  # sqlalchemy's ArgumentError, a ValueError from a bad port
        raise InputError(f"DATABASE_URL cannot be read as a database URL; expected {DATABASE_URL_FORM}") from None
    if backend not in ("sqlite", "postgresql"):
        raise InputError(f"DATABASE_URL is a {backend} URL, which the ledger does not support; it runs on sqlite "
                         f"and postgresql: expected {DATABASE_URL_FORM}")
    try:
        parsed.get_dialect().import_dbapi()  # what create_engine imports: the driver named in the URL
    except ImportError:
        if driver == "psycopg":
            raise InputError(message("postgres")) from None
        raise InputError(f"DATABASE_URL names the driver {backend}+{driver}, which is not installed; use "
                         f"postgresql://... (psycopg: pip install 'hermes-trader[postgres]')" if backend == "postgresql"
                         else f"DATABASE_URL names the driver {backend}+{driver}, which is not installed; "
                         f"expected {DATABASE_URL_FORM}") from None
    except Exception:  # an unknown driver name (sqlalchemy's NoSuchModuleError)
        raise InputError(f"DATABASE_URL names the driver {backend}+{driver}, which SQLAlchemy does not know; "
                         f"expected {DATABASE_URL_FORM}") from None


def open_ledger(url: str | None = None, migrate: bool = True, revision: str = "head",
                keep_damaged: bool = False) -> Engine:
    """An engine on the ledger, its schema upgraded to the latest migration (or `revision`).
    A SQLite file that fails `PRAGMA quick_check` raises LedgerDamaged (one line, exit 2);
    `keep_damaged` first copies the damaged files aside (the daemon's start)."""
    from sqlalchemy.exc import DatabaseError

    from .damage import LedgerDamaged, check_file, is_damage, keep_aside, reason_of, sqlite_file

    url = url or database_url()
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        _writable(Path(url[len("sqlite:///"):]).parent)
    check_file(url, keep=keep_damaged)
    if url.startswith("postgresql+psycopg"):
        from ..extras import require

        require("postgres")
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if migrate:
        try:
            upgrade(engine, revision)
        except DatabaseError as exc:  # damage the quick check could not see (a WAL gone bad)
            path = sqlite_file(url)
            if path is None or not is_damage(exc):
                raise
            engine.dispose()
            raise LedgerDamaged(str(path), reason_of(exc), keep_aside(path) if keep_damaged else None) from None
    return engine


def _writable(folder: Path) -> None:
    """The data directory must exist and take writes: say so plainly instead of a driver error."""
    from ..errors import InputError

    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise InputError(
            f"the data directory {folder} is not writable ({exc.strerror or exc.__class__.__name__}): "
            "set TRADER_DATA_DIR to a writable folder, or give this user write access to it "
            "(on Railway, a volume is owned by root: set RAILWAY_RUN_UID=0)") from None


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers (status, health) never block the writer; NORMAL sync is safe under WAL
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def upgrade(engine: Engine, revision: str = "head") -> None:
    if revision == "head" and _at_head(engine):
        return  # the usual case: alembic's import and run cost every command about 0.2 s
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def head_revision() -> str | None:
    """The newest migration, read from the files' `revision` / `down_revision` lines (no
    alembic import); None when they cannot be read as one straight line of revisions."""
    import re

    revisions, parents = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        rev = re.search(r"^revision\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
        down = re.search(r"^down_revision\s*=\s*(None|['\"]([^'\"]+)['\"])", text, re.M)
        if not rev or not down:
            return None
        revisions.add(rev.group(1))
        if down.group(2):
            parents.add(down.group(2))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _at_head(engine: Engine) -> bool:
    """Whether the ledger's schema is already the newest migration's."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError, ProgrammingError

    head = head_revision()
    if head is None:
        return False
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except (OperationalError, ProgrammingError):  # a new ledger: no version table yet
        return False
    return versions == [head]


def sessions(engine: Engine) -> sessionmaker[Session]:
    """A session factory; callers use `with factory.begin() as session:` so that every write
    is one transaction."""
    return sessionmaker(engine, expire_on_commit=False)

"""DATABASE_URL that cannot be used: one line naming it and what was wrong, exit 2, the
password never shown; checked once, where the URL is read (trader.ledger.db.database_url)."""

from __future__ import annotations

import sys

import pytest

from trader.cli import main as trader_main
from trader.errors import InputError
from trader.ledger import database_url

PASSWORD = "Zq8-sekrit-Lw3"


@pytest.mark.parametrize("url, says", [
    ("garbage", "DATABASE_URL cannot be read as a database URL; expected sqlite:///PATH or postgresql://"),
    (f"postgresql://bot:{PASSWORD}@db:notaport/trader", "DATABASE_URL cannot be read as a database URL"),
    (f"mysql://bot:{PASSWORD}@db/trader", "DATABASE_URL is a mysql URL, which the ledger does not support; it runs "
                                          "on sqlite and postgresql"),
    (f"postgresql+nodriver://bot:{PASSWORD}@db/trader", "DATABASE_URL names the driver postgresql+nodriver, which "
                                                        "SQLAlchemy does not know"),
])
def test_a_bad_database_url_is_named_in_one_line_without_its_password(url, says, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", url)
    assert trader_main(["status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {says}") and err.count("\n") == 1 and PASSWORD not in err
    assert "try again" not in err


def test_a_postgresql_driver_that_is_not_installed_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(InputError, match=r"postgresql\+psycopg2, which is not installed.*hermes-trader\[postgres\]"):
        database_url({"DATABASE_URL": f"postgresql+psycopg2://bot:{PASSWORD}@db/trader"})
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(InputError, match=r"DATABASE_URL.*pip install 'hermes-trader\[postgres\]'") as raised:
        database_url({"DATABASE_URL": f"postgres://bot:{PASSWORD}@db/trader"})
    assert PASSWORD not in str(raised.value)


def test_a_good_database_url_is_unchanged(tmp_path):
    assert database_url({"DATABASE_URL": "postgres://bot:pw@db/trader"}) == "postgresql+psycopg://bot:pw@db/trader"
    assert database_url({"DATABASE_URL": f"sqlite:///{tmp_path}/t.db"}) == f"sqlite:///{tmp_path}/t.db"

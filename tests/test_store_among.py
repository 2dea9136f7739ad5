"""`store.db.among`: a long IN list as one parameter, on SQLite (json_each) and PostgreSQL (= ANY)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
from sqlalchemy import select

from digest.store.db import among
from digest.store.models import Subscriber


@pytest.fixture
def emails(db) -> dict[str, int]:
    with db.session() as s:
        rows = [Subscriber(email=f"r{i}@example.org") for i in range(30)]
        s.add_all(rows)
        s.flush()
        return {r.email: r.id for r in rows}


def test_ints_strings_numpy_ints_and_nothing(db, emails):
    ids = sorted(emails.values())
    with db.session() as s:
        def got(column, values):
            return sorted(s.scalars(select(Subscriber.id).where(among(column, values))))

        assert got(Subscriber.id, ids[::3]) == ids[::3]
        assert got(Subscriber.id, np.array(ids[:4], dtype=np.int64)) == ids[:4]
        assert got(Subscriber.email, ["r1@example.org", "nobody@example.org", "r2@example.org"]) == \
            sorted([emails["r1@example.org"], emails["r2@example.org"]])
        assert got(Subscriber.id, []) == []
        assert got(Subscriber.email, ["it's \"quoted\" \\ ünïcode@example.org"]) == []


def test_one_statement_text_whatever_the_length(db):
    """The SQL is the same for 2 values and 20,000: nothing per length for the driver to prepare and keep."""

    def sql(n: int) -> str:
        return str(select(Subscriber.id).where(among(Subscriber.id, range(n))).compile(db.engine))

    assert sql(2) == sql(20_000)


@pytest.mark.sqlite_only  # the JSON array is SQLite's; psycopg adapts or refuses the array itself
def test_other_values_are_refused_loudly(db):
    with db.session() as s, pytest.raises(Exception, match="cannot pass datetime"):
        s.execute(select(Subscriber.id).where(among(Subscriber.created_at, [datetime(2026, 12, 1)])))

"""Shared fixtures: real databases (SQLite always, PostgreSQL wherever it answers)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from digest.config import from_dict
from digest.mail.sink import SmtpSink
from digest.store.db import Database

FIXTURES = Path(__file__).parent / "fixtures"
PG_URL = os.environ.get("DIGEST_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_available() -> bool:
    try:
        eng = create_engine(PG_URL, connect_args={"connect_timeout": 2})
        with eng.connect() as c:
            c.execute(text("select 1"))
        eng.dispose()
        return True
    except Exception:
        return False


PG_UP = _pg_available()
# On CI (.ci/run starts PostgreSQL) a missing server is a failure, not a reason to skip.
if os.environ.get("CI") and not PG_UP:
    raise RuntimeError(f"PostgreSQL is not answering at {PG_URL}; .ci/run should have started it")

DB_KINDS = ["sqlite"] + (["postgresql"] if PG_UP else [])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses a database runs on SQLite and PostgreSQL; `@pytest.mark.sqlite_only` (for
    tests where the database plays no special part) keeps one on SQLite, so the suite stays quick;
    `@pytest.mark.postgresql_only` (code that only PostgreSQL runs) one on PostgreSQL, never skipped."""
    if "db_url" in metafunc.fixturenames:
        kinds = ["sqlite"] if metafunc.definition.get_closest_marker("sqlite_only") else DB_KINDS
        if metafunc.definition.get_closest_marker("postgresql_only"):
            kinds = ["postgresql"]
        metafunc.parametrize("db_url", kinds, indirect=True)


@pytest.fixture(autouse=True)
def _signing_secret(monkeypatch):
    """Links are signed with a fixed secret from the environment: a configured `web.secret_file` must
    exist (tests/test_config.py covers the file and the default one)."""
    monkeypatch.setenv("DIGEST_SECRET", "test-secret-" + "x" * 32)


@pytest.fixture
def db_url(request, tmp_path):
    """A fresh, empty database URL: a SQLite file, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'digest.store.db'}"
        return
    schema = "t_" + uuid.uuid4().hex[:12]
    eng = create_engine(PG_URL)
    with eng.begin() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    with eng.begin() as c:
        c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    eng.dispose()


@pytest.fixture
def db(db_url):
    database = Database(db_url)
    database.init()
    yield database
    database.dispose()


@pytest.fixture
def settings_for(tmp_path):
    """Build a Settings object for a test from plain dict overrides, secrets kept in tmp_path."""

    def make(db_url: str, **sections) -> object:
        # lexical unless a test asks for the hybrid: embedding every ingest would only slow the
        # tests that are about something else (tests/test_hybrid.py covers the hybrid end to end)
        data = {"database": {"url": db_url}, "web": {"secret_file": str(tmp_path / "secret")},
                "digest": {"ranker": "lexical"}}
        for key, value in sections.items():
            data.setdefault(key, {})
            if isinstance(value, dict) and isinstance(data[key], dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return from_dict(data)

    return make


@pytest.fixture
def server():
    """A real HTTP server on loopback replaying the responses a test gives it (tests/httpreplay.py)."""
    from tests.httpreplay import ReplayServer

    with ReplayServer() as srv:
        yield srv


@pytest.fixture
def smtp_sink():
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives (`.messages`)."""
    with SmtpSink() as sink:
        yield sink

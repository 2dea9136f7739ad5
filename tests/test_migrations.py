"""The Alembic migrations build exactly the schema the models describe, on every backend."""

import sys

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, text

from digest.cli import main
from digest.store.db import Database, _alembic_config
from digest.store.models import Base
from digest.store.revisions import known_revisions


def test_migrations_match_models(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_the_revisions_read_from_file_names_are_alembics():
    """`schema_state` knows the revisions from the migration files' names (without importing Alembic):
    the same revisions, in the same order, the same head, as Alembic reads from the files' contents."""
    script = ScriptDirectory.from_config(_alembic_config(None))
    chain = [r.revision for r in script.walk_revisions()][::-1]  # walk_revisions: head first
    assert known_revisions() == tuple(chain)
    assert known_revisions()[-1] == script.get_current_head()
    assert all(r.down_revision == (chain[i - 1] if i else None)
               for i, r in enumerate(reversed(list(script.walk_revisions()))))


def test_upgrade_is_idempotent(db):
    db.init()  # a second upgrade on an up-to-date database changes nothing
    with db.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() is not None


# --- what each command does to a database that is not at this version's schema (issue 13) ---------

READING = [["status"], ["sources"], ["due"], ["subscribers", "list"],
           ["subscribers", "show", "ada@example.org"],
           ["subscribers", "export"], ["preview", "--topic", "diffusion"], ["send", "--dry-run"]]


def digest(tmp_path, url: str, *args: str):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n[digest]\nranker = "lexical"\n')
    return CliRunner().invoke(main, ["--config", str(cfg), *args])


def one_line(result, *expected: str) -> str:
    assert result.exit_code == 1 and "Traceback" not in result.output and result.exception is not None
    line = result.output.strip()
    assert len(line.splitlines()) == 1 and line.startswith("Error: "), result.output
    for part in expected:
        assert part in line, line
    return line


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_reading_commands_never_create_a_schema(db_url, tmp_path):
    for args in READING:  # a fresh database: a SQLite file is not even created
        one_line(digest(tmp_path, db_url, *args), "digest init")
    if db_url.startswith("sqlite"):
        assert not list(tmp_path.glob("*.db*"))
    assert tables(db_url) == set()
    engine = create_engine(db_url)
    with engine.begin() as c:
        c.execute(text("CREATE TABLE other_app (x INTEGER)"))
    engine.dispose()
    for args in [*READING, ["ingest"], ["subscribers", "add", "ada@example.org"]]:
        one_line(digest(tmp_path, db_url, *args), "holds other tables (other_app)", "digest init")
    assert tables(db_url) == {"other_app"}
    result = digest(tmp_path, db_url, "init")
    assert result.exit_code == 0 and "digest tables added" in result.output
    assert {"other_app", "papers", "alembic_version"} <= tables(db_url)
    assert digest(tmp_path, db_url, "status").exit_code == 0


def test_writing_commands_create_a_fresh_database(db_url, tmp_path):
    result = digest(tmp_path, db_url, "subscribers", "add", "ada@example.org", "--topic", "diffusion")
    assert result.exit_code == 0, result.output
    assert digest(tmp_path, db_url, "subscribers", "list").output.strip().endswith("1 subscriber")


def test_an_older_schema_asks_for_init(db_url, tmp_path):
    db = Database(db_url)
    db.init()
    with db.engine.begin() as conn:
        cfg = _alembic_config(db.engine)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    db.dispose()
    for args in [*READING, ["ingest"]]:
        one_line(digest(tmp_path, db_url, *args), "schema revision 0003, older than", "run `digest init`")
    assert "paper_vectors" not in tables(db_url)
    result = digest(tmp_path, db_url, "init")
    assert result.exit_code == 0 and "upgraded from 0003" in result.output
    assert digest(tmp_path, db_url, "status").exit_code == 0


def test_an_unknown_revision_is_one_line_everywhere(db_url, tmp_path):
    db = Database(db_url)
    db.init()
    with db.engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    db.dispose()
    for args in [*READING, ["ingest"], ["init"]]:
        one_line(digest(tmp_path, db_url, *args), "schema revision '9999'", "does not know")


@pytest.mark.sqlite_only
def test_unsupported_database_urls_and_missing_drivers(db_url, tmp_path, monkeypatch):
    for url, expected in [("mysql://u@localhost/db", "unsupported database 'mysql'"),
                          ("not a url", "not a database URL")]:
        one_line(digest(tmp_path, url, "status"), "database.url: ", expected)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the postgres extra were not installed
    one_line(digest(tmp_path, "postgresql://u@127.0.0.1:1/db", "status"),
             "database.url: the PostgreSQL driver is not installed",
             "pip install 'trending-digest[postgres]'")


def test_upgrading_an_older_database_keeps_every_row_that_refers_to_a_rebuilt_table(db_url):
    """SQLite rebuilds a table to alter it (copy, drop, rename); with foreign keys on, the drop would
    delete each row referring to it. An upgrade from 0005 keeps a paper's vectors, the delivery items
    and feedback on it, and leaves foreign keys on (a removed subscriber still takes their rows)."""
    database = Database(db_url)
    database.init()
    with database.engine.begin() as conn:
        cfg = _alembic_config(database.engine)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    now = "2026-12-01 08:00:00"
    rows = {
        "papers": "(id, title, title_key, abstract, authors, upvotes, num_comments, categories, sources, "
                  "first_seen_at, "
                  f"updated_at) VALUES (1, 'X', 'x', '', '[]', 0, 0, '[]', '[]', '{now}', '{now}')",
        "subscribers": f"(id, email, status, frequency, weekday, hour, timezone, created_at) VALUES "
                       f"(1, 'ada@example.org', 'active', 'daily', 0, 8, 'UTC', '{now}')",
        "paper_vectors": "(paper_id, model, text_hash, vectors, created_at) VALUES (1, 'm', 'h', '', "
                         f"'{now}')",
        "deliveries": f"(id, subscriber_id, period, status, email, message_id, attempts, planned_at) VALUES "
                      f"(1, 1, '2026-12-01', 'sent', 'ada@example.org', '<m@x>', 1, '{now}')",
        "delivery_items": "(id, delivery_id, subscriber_id, paper_id, rank, score, kind, why) VALUES (1, 1, "
                          "1, 1, 1, 1.0, 'pick', '')",
        "feedback": f"(id, subscriber_id, paper_id, signal, created_at) VALUES (1, 1, 1, 1, '{now}')",
    }
    with database.engine.begin() as c:
        for table, values in rows.items():
            c.execute(text(f"INSERT INTO {table} {values}"))
    database.dispose()
    database = Database(db_url)
    database.init()  # what `digest init` does
    with database.engine.begin() as c:
        assert {t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                for t in rows} == dict.fromkeys(rows, 1)
        c.execute(text("DELETE FROM subscribers"))
        assert c.execute(text("SELECT count(*) FROM deliveries")).scalar() == 0  # cascades: foreign keys on
    database.dispose()

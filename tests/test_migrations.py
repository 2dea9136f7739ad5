"""The Alembic migrations build exactly the schema the models describe, on every backend."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from digest.store.models import Base


def test_migrations_match_models(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent(db):
    db.init()  # a second upgrade on an up-to-date database changes nothing
    with db.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() is not None

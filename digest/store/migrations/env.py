"""Alembic environment: runs on the connection handed over by digest.store.db.upgrade (or a URL)."""

from alembic import context
from sqlalchemy import create_engine

from digest.store.models import Base

config = context.config
target_metadata = Base.metadata


def migrate(conn) -> None:  # noqa: ANN001
    """Run the migrations on `conn`. On SQLite a batch migration rebuilds a table (copy, drop the old
    one, rename), and with foreign keys on, that drop deletes every row referring to the table (its
    vectors, delivery items, feedback...): foreign keys are off while migrating (set before SQLite's
    implicit transaction starts, or the pragma would do nothing) and checked afterwards. Whoever
    handed over the connection turns them on again once it has committed (digest.store.db.upgrade)."""
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
    context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    if sqlite and (broken := conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()):
        raise RuntimeError(f"the migration left rows whose references are gone: {broken[:5]}")


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        migrate(conn)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        migrate(conn)


run()

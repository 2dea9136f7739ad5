"""Engine and sessions. SQLite (WAL) by default, PostgreSQL (psycopg 3) through the same models."""

from __future__ import annotations

import json
import numbers
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sqlalchemy import ColumnElement, Engine, String, any_, bindparam, create_engine, event, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import NullType

from digest.config import ConfigError
from digest.store.revisions import MIGRATIONS, known_revisions

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

DRIVERS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}  # the backends digest runs on


class SchemaError(Exception):
    """The database is not at the schema this version uses; the message says what to do, in one line."""


def normalise_url(url: str) -> str:
    """Let users write postgresql:// and get the psycopg 3 driver."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def _create_engine(url: str, **kwargs) -> Engine:
    """`create_engine`, with a missing database driver as one line (config.DatabaseSettings checks
    the backend itself)."""
    try:
        return create_engine(url, **kwargs)
    except ImportError as err:
        backend = DRIVERS.get(make_url(url).get_backend_name(), make_url(url).get_backend_name())
        hint = " (pip install 'trending-digest[postgres]')" if backend == "PostgreSQL" else ""
        raise ConfigError(f"database.url: the {backend} driver is not installed: {err}{hint}") from None


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = _create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return _create_engine(url, pool_pre_ping=True)


def _alembic_config(engine: Engine | None) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig  # only to migrate: a current database needs none

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = None
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> None:
    """Create or upgrade the schema to the newest migration, in one transaction. On SQLite foreign keys
    are off while it runs (migrations/env.py says why) and on again once it has committed or failed."""
    from alembic import command

    with engine.connect() as conn:
        try:
            cfg = _alembic_config(engine)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
        finally:
            if conn.dialect.name == "sqlite":
                conn.rollback()  # a failed migration's work; nothing after a commit
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def is_initialised(engine: Engine) -> bool:
    return inspect(engine).has_table("alembic_version")


@dataclass(frozen=True)
class SchemaState:
    """What a database holds: `current` (this version's schema), `older` (ours, to upgrade), `missing`
    (no SQLite file), `empty` (no tables), `foreign` (tables, none of them ours), `unknown` (a
    revision these migrations do not know: a newer digest, or another application's)."""

    kind: Literal["current", "older", "missing", "empty", "foreign", "unknown"]
    where: str  # the URL without its password
    revision: str | None = None
    head: str = ""
    tables: tuple[str, ...] = ()

    @property
    def fresh(self) -> bool:
        return self.kind in ("missing", "empty")

    def problem(self) -> str:
        """One line: why a command cannot use the database as it is, and what to do."""
        return {
            "missing": f"no database at {self.where}: run `digest init` to create it",
            "empty": f"{self.where} has no digest tables: run `digest init` to create them",
            "foreign": f"{self.where} holds other tables ({', '.join(self.tables[:3])}"
                       f"{', ...' if len(self.tables) > 3 else ''}) and no digest schema: point database.url "
                       f"at the digest database, or run `digest init` to add the digest tables to this one",
            "older": f"{self.where} is at schema revision {self.revision}, older than this version's "
                     f"{self.head}: "
                     f"run `digest init` to upgrade it",
            "unknown": f"{self.where} is at schema revision {self.revision!r}, which this version of digest "
                       "does "
                       "not know (a newer digest, or another application's database): upgrade "
                       "trending-digest, "
                       f"or point database.url at the digest database",
            "current": "",
        }[self.kind]


def schema_state(url: str) -> SchemaState:
    """Look at a database without changing it: no schema is made, no SQLite file is created and no
    pragma is set (journal_mode=WAL would stick to another application's file)."""
    url = normalise_url(url)
    u = make_url(url)
    where = u.render_as_string(hide_password=True)
    known = known_revisions()
    head = known[-1]
    if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:") \
            and not u.query.get("uri") and not Path(u.database).exists():
        return SchemaState("missing", where, head=head)
    engine = _create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            names = inspect(conn).get_table_names()
            tables = tuple(sorted(t for t in names if t != "alembic_version"))
            revisions = stored_revisions(conn) if "alembic_version" in names else ()
    finally:
        engine.dispose()
    if not revisions:
        return SchemaState("foreign" if tables else "empty", where, head=head, tables=tables)
    revision = ", ".join(revisions)
    if any(r not in known for r in revisions):
        return SchemaState("unknown", where, revision, head)
    return SchemaState("current" if revisions == (head,) else "older", where, revision, head)


def stored_revisions(conn: Connection) -> tuple[str, ...]:
    """The revisions the database's `alembic_version` table names (what Alembic's own
    `get_current_heads` reads: one row, or one per branch head)."""
    return tuple(row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version")))


Schema = Literal["check", "create", "upgrade"]


def open_checked(url: str, schema: Schema) -> tuple[Database, SchemaState]:
    """The database at `url`, once its schema is fit for a command:

    - `check` (reading commands): it must be at this version's schema, nothing is created;
    - `create` (writing commands): a missing or empty database gets the schema; any other must be current;
    - `upgrade` (`digest init`): created or upgraded to the newest schema; only an unknown revision is
    refused.

    Raises SchemaError (one line, pointing at `digest init`) otherwise."""
    state = schema_state(url)
    ok = state.kind == "current" or (state.fresh and schema != "check") or (
        schema == "upgrade" and state.kind != "unknown")
    if not ok:
        raise SchemaError(state.problem())
    db = Database(url)
    if state.kind != "current":
        db.init()
    return db, state


class Database:
    """One engine and its session factory."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.Session = sessionmaker(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def init(self) -> None:
        upgrade(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: commit on success, roll back on error."""
        with self.Session() as s, s.begin():
            yield s

    def ping(self) -> None:
        """Ask the database for `SELECT 1`; raises the driver's error when it cannot answer."""
        with self.engine.connect() as c:
            c.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


class _Among(ColumnElement[bool]):
    """`column IN (values)`, written per dialect (see `among`)."""

    inherit_cache = False  # the values are the statement's; nothing to cache by
    type = NullType()  # a condition as it stands (Boolean would get "= 1" on SQLite)

    def __init__(self, column: ColumnElement, values: Iterable):
        self.column, self.values = column, list(values)


@compiles(_Among)
def _among_default(element: _Among, compiler, **kw) -> str:
    return compiler.process(element.column.in_(element.values), **kw)


@compiles(_Among, "postgresql")
def _among_postgresql(element: _Among, compiler, **kw) -> str:
    from sqlalchemy.dialects.postgresql import ARRAY  # the PostgreSQL dialect: loaded where it runs

    array = bindparam(None, element.values, type_=ARRAY(element.column.type))
    return compiler.process(element.column == any_(array), **kw)


def _integer(value: object) -> int:
    """JSON for the ints JSON does not know (numpy's); anything else is a mistake, said loudly."""
    if isinstance(value, numbers.Integral):
        return int(value)
    raise TypeError(f"among(): cannot pass {type(value).__name__} values")


@compiles(_Among, "sqlite")
def _among_sqlite(element: _Among, compiler, **kw) -> str:
    array = bindparam(None, json.dumps(element.values, default=_integer), type_=String())
    return (f"{compiler.process(element.column, **kw)} IN (SELECT value FROM "
            f"json_each({compiler.process(array, **kw)}))")


def among(column: ColumnElement, values: Iterable) -> ColumnElement[bool]:
    """`column IN (values)` for a long list of values (ints or strings), as one parameter: an array on
    PostgreSQL (`= ANY(%s)`; psycopg parses a statement of thousands of placeholders in Python, every
    time), a JSON array read by `json_each` on SQLite (one statement text, whatever the length: the
    driver's statement cache no longer keeps a prepared statement per list length, which grew the
    memory of a run with its list), the usual expanding IN elsewhere."""
    return _Among(column, values)

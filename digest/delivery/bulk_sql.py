"""Bulk SQL per dialect: how the ledger writes a planning run's rows fastest on SQLite and on
PostgreSQL. Speed work, behind this contract: each function writes exactly the rows a plain insert
of the same values would (checked by tests/test_planning.py and tests/test_delivery.py on both
databases), and leaves every rule (which rows, which values) to the ledger, its only caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from sqlalchemy import Engine, create_engine, exc, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from digest.records import as_utc
from digest.store.db import among
from digest.store.models import Delivery, DeliveryItem

# PostgreSQL advisory lock (this key, the schema's hash): one planner per schema writes at a time.
PLANNER_LOCK = 0x64696765
ITEM_COLUMNS = ("delivery_id", "subscriber_id", "paper_id", "rank", "score", "kind", "topic", "why")


def lock_planners(s: Session) -> None:
    """On PostgreSQL, hold the planners' lock for this transaction (SQLite writes one at a time anyway)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(select(func.pg_advisory_xact_lock(PLANNER_LOCK, func.hashtext(func.current_schema()))))


def insert_new_deliveries(s: Session, rows: Sequence[dict]) -> dict[int, int]:
    """Subscriber id -> new delivery id, for the `deliveries` rows whose (subscriber, period) is not
    taken yet.

    SQLite: INSERT ... ON CONFLICT DO NOTHING RETURNING. PostgreSQL, under the planner's lock (no
    other planner writes meanwhile): the pairs already there are read, the rest inserted by a plain
    executemany and their ids read back. A RETURNING of many rows goes as statements of 1,000 rows'
    placeholders, which psycopg parses anew every time (a fifth of planning 100,000)."""
    table = Delivery.__table__  # Core: the ORM's bulk insert costs as much again per row
    if s.get_bind().dialect.name != "postgresql":
        stmt = (sqlite_insert(table).on_conflict_do_nothing(index_elements=["subscriber_id", "period"])
                .returning(table.c.id, table.c.subscriber_id))
        return {sid: did for did, sid in s.execute(stmt, rows)}

    def stored() -> list:
        return s.execute(select(table.c.subscriber_id, table.c.period, table.c.id).where(
            among(table.c.subscriber_id, [r["subscriber_id"] for r in rows]),
            among(table.c.period, {r["period"] for r in rows}))).all()

    taken = {(sid, period) for sid, period, _ in stored()}
    fresh = [r for r in rows if (r["subscriber_id"], r["period"]) not in taken]
    if fresh:
        s.execute(pg_insert(table).on_conflict_do_nothing(index_elements=["subscriber_id", "period"]), fresh)
    new = {(r["subscriber_id"], r["period"]) for r in fresh}
    return {sid: did for sid, period, did in stored() if (sid, period) in new}


def insert_items(s: Session, items: list[tuple]) -> None:
    """Many item rows (`ITEM_COLUMNS` tuples) at once: COPY on PostgreSQL (psycopg's executemany sends
    a statement per row, a million of them for 100,000 editions), sqlite3's own executemany on SQLite
    (SQLAlchemy's costs more than SQLite's insert)."""
    columns = ", ".join(ITEM_COLUMNS)
    if s.get_bind().dialect.name != "postgresql":
        s.connection().exec_driver_sql(f"INSERT INTO {DeliveryItem.__tablename__} ({columns}) VALUES "
                                       f"({', '.join('?' * len(ITEM_COLUMNS))})", items)
        return
    with s.connection().connection.cursor() as cur, \
            cur.copy(f"COPY {DeliveryItem.__tablename__} ({columns}) FROM STDIN") as copy:
        for item in items:
            copy.write_row(item)


FINISH_COLUMNS = ("id", "status", "last_error", "attempts", "next_attempt_at", "sent_at", "subject")
_FINISH_TYPES = ("bigint", "varchar", "text", "integer", "timestamptz", "timestamptz", "text")


def finish_outcomes(engine: Engine, worker: str, rows: Sequence[tuple]) -> list[int]:
    """PostgreSQL: record a group of outcomes (`FINISH_COLUMNS` tuples; None in the last four: leave
    the value as it is) for deliveries `worker` still holds, as ledger.finish does row by row, in one
    autocommitted UPDATE ... FROM (VALUES ...) RETURNING: one round trip for the group, instead of an
    UPDATE per outcome, a COMMIT and the pool's pre-ping (the connection comes from `_sending`, an
    engine without pre-ping; one that died is opened again and the statement sent once more, which
    changes nothing it changed already: it only touches rows still `sending` for this worker).
    Returns the ids recorded."""
    values = ", ".join("(" + ", ".join(f"%s::{t}" for t in _FINISH_TYPES) + ")" for _ in rows)
    sql = (f"UPDATE {Delivery.__tablename__} AS d SET status = v.status, worker_id = NULL, "
           "lease_expires_at = NULL, last_error = v.last_error, "
           "attempts = COALESCE(v.attempts, d.attempts), "
           "next_attempt_at = COALESCE(v.next_attempt_at, d.next_attempt_at), "
           "sent_at = COALESCE(v.sent_at, d.sent_at), subject = COALESCE(v.subject, d.subject) "
           f"FROM (VALUES {values}) AS v ({', '.join(FINISH_COLUMNS)}) "
           "WHERE d.id = v.id AND d.worker_id = %s AND d.status = 'sending' RETURNING d.id")
    params = tuple(x for i, status, error, attempts, retry_at, sent_at, subject in rows
                   for x in (i, str(status), error, attempts, as_utc(retry_at) if retry_at else None,
                             as_utc(sent_at) if sent_at else None, subject)) + (worker,)
    for attempt in (1, 2):
        try:
            with _sending(engine).connect() as c:
                return [i for (i,) in c.exec_driver_sql(sql, params)]
        except exc.DBAPIError as err:
            if attempt == 2 or not err.connection_invalidated:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


@lru_cache(maxsize=4)
def _sending(engine: Engine) -> Engine:
    """The database of `engine`, for recording outcomes: autocommit, no pre-ping on checkout, a connection
    kept for each sending thread that records at the same moment (they do not wait for each other)."""
    return create_engine(engine.url, isolation_level="AUTOCOMMIT", pool_size=SENDING_CONNECTIONS,
                         max_overflow=8)


SENDING_CONNECTIONS = 16  # kept open at most, per process: more than a process has sending threads

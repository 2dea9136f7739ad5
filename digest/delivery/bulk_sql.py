"""Bulk SQL per dialect: how the ledger writes a planning run's rows fastest on SQLite and on
PostgreSQL. Speed work, behind this contract: each function writes exactly the rows a plain insert
of the same values would (checked by tests/test_planning.py and tests/test_delivery.py on both
databases), and leaves every rule (which rows, which values) to the ledger, its only caller.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

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

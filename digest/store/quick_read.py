"""Speed work (issue 25: `digest status` and `digest due` answer in <= 0.3 s): the reads those two
commands make, through the plain DB-API, so they start without SQLAlchemy (about a third of a second
of their start).

Contract:
- `open_reader(url)` returns a `QuickReader` for a `sqlite:///PATH` URL (sqlite3) or a PostgreSQL URL
  (psycopg, the driver digest's PostgreSQL URLs use), parsed here without SQLAlchemy, once the database
  is at this version's schema (its `alembic_version` names `store.revisions.known_revisions()`' head).
  Anything else returns None and the command takes the normal path (digest.store.db): another URL form
  (a query on a SQLite URL, an in-memory database, an IPv6 host...), a missing file, a schema that is
  not current (its message and `digest init` stay in one place), a database that cannot be reached.
- It only reads. Each method answers one read of digest.usecases.reads.Reads with the SAME records
  and values as the ORM store function it mirrors (named in its docstring), in the same order: the SQL
  is what SQLAlchemy sends for that function, and values are converted as the ORM's column types do
  (UTC datetimes, booleans, JSON). tests/test_quick_read.py runs `status` and `due` through both
  readers on SQLite and PostgreSQL and asserts identical results; a change to one of those store
  functions, or to the tables, must be made here too.
"""

from __future__ import annotations

import json
import re
from collections import namedtuple
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

from digest.records import (
    JOB_STATE,
    DeliveryStatus,
    LastEdition,
    SourceStateView,
    Subscriber,
    SubscriberStatus,
)
from digest.store import subscriber_rows
from digest.store.revisions import known_revisions

CHUNK = 5000  # values per IN (...) list, as the store's
_SQLITE = re.compile(r"(sqlite(?:\+pysqlite)?):///([^?#%]+)")  # sqlite:///PATH, nothing else
_POSTGRES = ("postgresql", "postgres", "postgresql+psycopg")

_SubscriberRow = namedtuple("_SubscriberRow", subscriber_rows.COLUMNS)
_TopicRow = namedtuple("_TopicRow", "subscriber_id phrase kind weight")


def open_reader(url: str) -> QuickReader | None:
    """A reader for `url`, or None: the normal path then opens it (see the contract above)."""
    try:
        opened = _connect(url)
    except Exception:  # noqa: BLE001 - whatever went wrong, the normal path says it its own way
        return None
    if opened is None:
        return None
    reader = QuickReader(*opened)
    try:
        current = reader.revisions() == (known_revisions()[-1],)
    except Exception:  # noqa: BLE001 - no alembic_version table: not a digest database (yet)
        current = False
    if not current:
        reader.close()
        return None
    return reader


def _connect(url: str) -> tuple[Any, str, str] | None:
    """(DB-API connection, dialect name, the URL as SQLAlchemy renders it without its password)."""
    found = _SQLITE.fullmatch(url)
    if found:
        driver, path = found.groups()
        if path == ":memory:" or not Path(path).is_file():
            return None
        import sqlite3

        conn = sqlite3.connect(f"file:{quote(str(Path(path).absolute()))}?mode=rw", uri=True, timeout=30)
        return conn, "sqlite", f"{driver}:///{quote(path, safe=' +/')}"
    parts = urlsplit(url)
    if parts.scheme not in _POSTGRES or "#" in url or "@" in parts.path + parts.query or "[" in parts.netloc:
        return None
    user, at, place = parts.netloc.rpartition("@")
    username, has_password, password = user.partition(":")
    host, _, port = place.partition(":")
    query = parse_qsl(parts.query)
    if not place or "/" in parts.path[1:] or len({k for k, _ in query}) != len(query):
        return None
    args: dict[str, Any] = {k: v for k, v in (("user", unquote(username) if at else None),
                                              ("password", unquote(password) if has_password else None),
                                              ("host", host or None), ("port", int(port) if port else None),
                                              ("dbname", unquote(parts.path[1:]) or None)) if v is not None}
    args.update(query)  # as SQLAlchemy's psycopg dialect passes them (options=-csearch_path=...)
    import psycopg

    conn = psycopg.connect(**args)
    where = "postgresql+psycopg://"
    if at:
        where += quote(unquote(username), safe=" +") + (":***" if has_password else "") + "@"
    where += host + (f":{int(port)}" if port else "")
    if parts.path[1:]:
        where += "/" + quote(unquote(parts.path[1:]), safe=" +/")
    if query:
        where += "?" + "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in sorted(query))
    return conn, "postgresql", where


class QuickReader:
    """digest.usecases.reads.Reads through one DB-API connection (see the module's contract)."""

    def __init__(self, conn: Any, dialect: str, where: str):
        self.conn, self.dialect, self.where = conn, dialect, where
        self.mark = "?" if dialect == "sqlite" else "%s"

    def close(self) -> None:
        self.conn.close()

    def _rows(self, sql: str, params: Sequence = ()) -> list[tuple]:
        cur = self.conn.cursor()
        try:
            cur.execute(sql.replace("?", self.mark), tuple(params))
            return cur.fetchall()
        finally:
            cur.close()

    def _among(self, column: str, values: list) -> tuple[str, Any]:
        """`column IN (values)` as digest.store.db.among writes it, and its one parameter."""
        if self.dialect == "sqlite":
            return f"{column} IN (SELECT value FROM json_each(?))", json.dumps(values)
        return f"{column} = ANY(?)", values

    def _time(self, value: Any) -> datetime | None:
        """A stored datetime as the ORM's UTCDateTime reads it: aware, UTC when the backend forgets."""
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def _bind_time(self, value: datetime) -> Any:
        """A datetime as the ORM binds it: UTC; on SQLite the text SQLAlchemy stores."""
        value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f") if self.dialect == "sqlite" else value

    def _json(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    # --- the schema and the secrets -------------------------------------------------------------------

    def revisions(self) -> tuple[str, ...]:
        """store.db.stored_revisions."""
        return tuple(r[0] for r in self._rows("SELECT version_num FROM alembic_version"))

    def signing_secrets(self) -> list[str]:
        """store.secrets.stored."""
        return [r[0] for r in self._rows("SELECT signing_secrets.secret FROM signing_secrets "
                                         "ORDER BY signing_secrets.created_at, signing_secrets.secret")]

    # --- digest status --------------------------------------------------------------------------------

    def paper_count(self) -> int:
        """store.papers.count."""
        return self._rows("SELECT count(*) AS count_1 FROM papers")[0][0] or 0

    def subscriber_counts(self) -> dict[str, int]:
        """store.subscribers.count_by_status."""
        return dict(self._rows("SELECT subscribers.status, count(*) AS count_1 FROM subscribers "
                               "GROUP BY subscribers.status"))

    def source_states(self) -> dict[str, SourceStateView]:
        """sources.ingest.source_states."""
        return {name: SourceStateView(name, watermark, self._time(run), self._time(success),
                                      self._time(error_at), error, fetched or 0, new or 0, updated or 0,
                                      skipped or 0, dict(self._json(cache) or {}))
                for name, watermark, run, success, error_at, error, fetched, new, updated, skipped, cache
                in self._rows(
            "SELECT source_state.name, source_state.watermark, source_state.last_run_at, "
            "source_state.last_success_at, source_state.last_error_at, source_state.last_error, "
            "source_state.total_fetched, source_state.total_new, source_state.total_updated, "
            "source_state.total_skipped, source_state.http_cache FROM source_state")}

    def ledger_summary(self, failures: int = 5) -> dict:
        """delivery.ledger.summary."""
        failed = self._rows("SELECT deliveries.email, deliveries.period, deliveries.last_error "
                            "FROM deliveries WHERE deliveries.status = ? ORDER BY deliveries.id DESC LIMIT ?",
                            (str(DeliveryStatus.FAILED), failures))
        return {
            "deliveries": dict(self._rows("SELECT deliveries.status, count(*) AS count_1 FROM deliveries "
                                          "GROUP BY deliveries.status")),
            "last_sent_at": self._time(
                self._rows("SELECT max(deliveries.sent_at) AS max_1 FROM deliveries")[0][0]),
            "recent_failures": [{"email": e, "period": p, "error": err} for e, p, err in failed],
        }

    def lease_holders(self) -> list[dict]:
        """delivery.ledger.holders."""
        rows = self._rows(
            "SELECT deliveries.worker_id, count(*) AS count_1, min(deliveries.lease_expires_at) AS min_1, "
            "max(deliveries.lease_expires_at) AS max_1 FROM deliveries WHERE deliveries.status = ? "
            "GROUP BY deliveries.worker_id ORDER BY min(deliveries.lease_expires_at)",
            (str(DeliveryStatus.SENDING),))
        return [{"worker": w or "", "deliveries": n, "first_until": self._time(first),
                 "until": self._time(last)} for w, n, first, last in rows]

    def suppressed_count(self) -> int:
        """store.subscribers.count_suppressed."""
        return self._rows("SELECT count(*) AS count_1 FROM suppressions")[0][0] or 0

    def job_states(self) -> dict[str, dict]:
        """store.jobs.states."""
        out = {}
        for job_id, *values in self._rows(f"SELECT job_id, {', '.join(JOB_STATE)} FROM scheduler_jobs"):
            row = dict(zip(JOB_STATE, values, strict=True))
            for k in ("next_run_at", "last_started_at", "last_finished_at"):
                row[k] = self._time(row[k])
            row["last_ok"] = None if row["last_ok"] is None else bool(row["last_ok"])
            out[job_id] = row
        return out

    # --- digest due -----------------------------------------------------------------------------------

    def mailable_batch(self, now: datetime, after_id: int, limit: int,
                       email: str | None = None) -> list[Subscriber]:
        """store.subscribers.mailable_batch (its `mailable` rule, in SQL: active, or a pause that has
        ended), read into records as store.subscribers.load does."""
        sql = (f"SELECT {', '.join('subscribers.' + c for c in subscriber_rows.COLUMNS)} FROM subscribers "
               "WHERE (subscribers.status = ? OR subscribers.status = ? AND subscribers.paused_until <= ?) "
               "AND subscribers.id > ?")
        params: list = [str(SubscriberStatus.ACTIVE), str(SubscriberStatus.PAUSED), self._bind_time(now),
                        after_id]
        if email:
            sql += " AND subscribers.email = ?"
            params.append(email)
        rows = [_SubscriberRow(*r)
                for r in self._rows(sql + " ORDER BY subscribers.id LIMIT ?", [*params, limit])]
        return self._records(rows)

    def _records(self, rows: list[_SubscriberRow]) -> list[Subscriber]:
        if not rows:
            return []
        rows = [r._replace(created_at=self._time(r.created_at), paused_until=self._time(r.paused_until),
                           unsubscribed_at=self._time(r.unsubscribed_at)) for r in rows]
        ids = [r.id for r in rows]
        topics: dict[int, list] = {i: [] for i in ids}
        feedback: dict[int, tuple[list[int], list[int]]] = {i: ([], []) for i in ids}
        for start in range(0, len(ids), CHUNK):
            where, chunk = self._among("topics.subscriber_id", ids[start : start + CHUNK])
            for t in self._rows("SELECT topics.subscriber_id, topics.phrase, topics.kind, topics.weight "
                                f"FROM topics WHERE {where} ORDER BY topics.id", (chunk,)):
                topics[t[0]].append(_TopicRow(*t))
            where, chunk = self._among("feedback.subscriber_id", ids[start : start + CHUNK])
            for sid, pid, signal in self._rows(
                    "SELECT feedback.subscriber_id, feedback.paper_id, feedback.signal "
                    f"FROM feedback WHERE {where} ORDER BY feedback.id", (chunk,)):
                feedback[sid][0 if signal > 0 else 1].append(pid)
        return [subscriber_rows.record(r, *subscriber_rows.split(topics[r.id]), *feedback[r.id],
                                       authors=subscriber_rows.followed(topics[r.id]),
                                       weights=subscriber_rows.weights(topics[r.id])) for r in rows]

    def suppressed(self, emails: Iterable[str]) -> dict[str, str]:
        """store.subscribers.suppressed."""
        wanted = sorted(set(emails))
        out: dict[str, str] = {}
        for start in range(0, len(wanted), CHUNK):
            where, chunk = self._among("suppressions.email", wanted[start : start + CHUNK])
            out.update(self._rows("SELECT suppressions.email, suppressions.reason FROM suppressions "
                                  f"WHERE {where}", (chunk,)))
        return out

    def last_editions(self, subscriber_ids: Sequence[int]) -> dict[int, LastEdition | None]:
        """The `last` of delivery.ledger.history: each subscriber's newest edition."""
        ids = list(subscriber_ids)
        if not ids:
            return {}
        where, values = self._among("deliveries.subscriber_id", ids)
        rows = self._rows(
            "SELECT deliveries.subscriber_id, deliveries.period, deliveries.planned_at, deliveries.status, "
            f"deliveries.note FROM deliveries WHERE {where} AND deliveries.planned_at = "
            "(SELECT max(deliveries_1.planned_at) AS max_1 FROM deliveries AS deliveries_1 "
            "WHERE deliveries_1.subscriber_id = deliveries.subscriber_id)", (values,))
        quiet = str(DeliveryStatus.QUIET)
        return {sid: LastEdition(period, self._time(at), (note or "quiet") if status == quiet else None)
                for sid, period, at, status, note in rows}

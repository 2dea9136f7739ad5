"""Outcomes recorded on PostgreSQL without waiting for them: speed work behind ledger.finish.

The contract: `OutcomeWriter.start(worker, outcome)` sends the UPDATE that ledger.finish runs for one
outcome without a bounce (the same row, the same values: tests/test_pg_outcomes.py compares the rows
both leave), autocommitted, on the writer's own connection, and returns at once; `wait()` returns
once the server has committed it (as durably as the server's `synchronous_commit` makes any commit):
True if the row was recorded, False if another worker had taken it over; or it raises what went
wrong. One outcome at a time: `wait()` before the next `start()`. Its caller (digest.delivery.pool)
waits before the same SMTP connection ends its next message, so a crash still sends at most one
message per connection twice; meanwhile the thread sends all of that message but its ending dot.

A writer belongs to one sending thread: a plain psycopg connection with the statement prepared
once, driven through libpq's asynchronous calls (the thread waits in `select`, not holding the
interpreter). A connection that died is opened again and the statement run once more, which changes
nothing it changed already: it only touches a row still `sending` for this worker.
"""

from __future__ import annotations

import select
from datetime import datetime

import psycopg
from psycopg import pq
from sqlalchemy import Engine

from digest.records import as_utc
from digest.store.models import Delivery

NAME = b"digest_record_outcome"
PREPARE = (f"PREPARE {NAME.decode()} (varchar, text, integer, timestamptz, timestamptz, text, bigint, "
           f"varchar) AS UPDATE {Delivery.__tablename__} SET status = $1, worker_id = NULL, "
           "lease_expires_at = NULL, last_error = $2, attempts = COALESCE($3, attempts), "
           "next_attempt_at = COALESCE($4, next_attempt_at), sent_at = COALESCE($5, sent_at), "
           "subject = COALESCE($6, subject) WHERE id = $7 AND worker_id = $8 AND status = 'sending'")


class OutcomeWriter:
    """One sending thread's connection for its outcomes (opened at the first one)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.conn: psycopg.Connection | None = None
        self._params: list[bytes | None] | None = None  # the outcome sent, not waited for yet

    def start(self, worker: str, outcome) -> None:
        """Send the UPDATE recording `outcome` (a ledger.Outcome without a bounce); `wait` for it."""
        assert self._params is None, "wait() for the outcome in flight first"
        o = outcome
        self._params = [str(o.status).encode(), _text(o.error), _text(o.attempts), _time(o.next_attempt_at),
                        _time(o.sent_at), _text(o.subject), b"%d" % o.delivery_id, worker.encode()]
        try:
            self._send()
        except psycopg.OperationalError:
            self._lost()  # the next `wait` opens it again and sends once more

    def wait(self) -> bool:
        """Once the outcome sent is committed: whether its row was recorded (False: taken over)."""
        params, self._params = self._params, None
        if params is None:
            raise RuntimeError("no outcome in flight")
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self._params = params
                    self._send()
                    self._params = None
                return self._result()
            except psycopg.OperationalError:
                if attempt == 2 or (self.conn is not None and self.conn.pgconn.status == pq.ConnStatus.OK):
                    self.close()
                    raise
                self._lost()
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None

    def _lost(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def _send(self) -> None:
        if self.conn is None:
            args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
            self.conn = psycopg.connect(*args, **kwargs, autocommit=True)
            self.conn.execute(PREPARE)
        pg = self.conn.pgconn
        pg.send_query_prepared(NAME, self._params)
        while pg.flush():  # non-blocking: what did not fit in the socket's buffer goes as it drains
            _wait(pg.socket, select.POLLOUT)

    def _result(self) -> bool:
        assert self.conn is not None
        pg, results = self.conn.pgconn, []
        while True:
            while pg.is_busy():
                _wait(pg.socket, select.POLLIN)
                pg.consume_input()
            if (r := pg.get_result()) is None:
                break
            results.append(r)
        (r,) = results
        if r.status != pq.ExecStatus.COMMAND_OK:  # the connection lost is one to open again
            kind = psycopg.OperationalError if pg.status == pq.ConnStatus.BAD else psycopg.DatabaseError
            raise kind("recording an outcome: " + (r.error_message or b"").decode(errors="replace").strip())
        return r.command_tuples == 1


def _wait(fd: int, event: int) -> None:
    """Until `fd` is ready for `event` (poll: any descriptor number; the interpreter let go meanwhile)."""
    p = select.poll()
    p.register(fd, event)
    p.poll()


def _text(value: object) -> bytes | None:
    return None if value is None else str(value).encode()


def _time(value: datetime | None) -> bytes | None:
    return None if value is None else as_utc(value).isoformat().encode()

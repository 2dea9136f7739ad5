"""Outcomes recorded on PostgreSQL without waiting (digest.delivery.pg_outcomes), and what that must not
change: a message's connection ends it only once the outcome before it is committed, so a sender killed
meanwhile sends at most one message twice, and a failed record leaves the next message undelivered.

PostgreSQL only (the writer is PostgreSQL's); each test has its own schema (tests/conftest.py).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from digest.delivery import ledger
from digest.delivery.pg_outcomes import OutcomeWriter
from digest.mail.sink import SmtpSink
from digest.records import DeliveryStatus
from digest.store.models import Delivery
from tests.factories import BASE, addr, mail_settings, planned_world

S = DeliveryStatus
ROOT = Path(__file__).resolve().parent.parent
SENDER = """
import json, sys
from digest import config
from digest.delivery import sender
from digest.store.db import Database
settings = config.load(sys.argv[1])
r = sender.send(Database(settings.database.url), settings)
print(json.dumps({"sent": r.sent, "failed": r.failed, "errors": r.errors}))
"""


pytestmark = pytest.mark.postgresql_only  # the writer is PostgreSQL's: never skipped, never on SQLite


@pytest.fixture
def pg(db, db_url):
    assert db_url.startswith("postgresql")
    return db


RECORDED = ("status", "attempts", "next_attempt_at", "worker_id", "lease_expires_at", "last_error", "sent_at",
            "subject")  # what recording an outcome may change


def _rows(db) -> dict[int, tuple]:
    t = Delivery.__table__
    with db.engine.connect() as c:
        return {r[0]: tuple(r[1:]) for r in c.execute(select(t.c.id, *(t.c[name] for name in RECORDED)))}


def test_the_writer_leaves_the_rows_ledger_finish_leaves(pg, settings_for):
    """Two copies of one world, one recorded by ledger.finish, one by the writer: the same rows (sent,
    a retry, failed with nothing optional, and one another worker took over)."""
    with SmtpSink() as sink:
        planned_world(pg, mail_settings(settings_for, pg, sink), 8)
    now = datetime.now(UTC).replace(microsecond=123456)
    ids = ledger.claim(pg, "me", now, 8)
    outcomes = lambda base: [  # noqa: E731 - the same outcomes for two sets of ids
        ledger.Outcome(base[0], S.SENT, attempts=1, sent_at=now, subject="Today's papers: é, ü"),
        ledger.Outcome(base[1], S.RETRY, attempts=2, error="451 4.7.1 try later",
                       next_attempt_at=now + timedelta(minutes=5)),
        ledger.Outcome(base[2], S.FAILED, error="broken"),
        ledger.Outcome(base[3], S.SENT, attempts=1, sent_at=now, subject="taken over"),
    ]
    with pg.engine.begin() as c:  # the last of each four was taken over by another worker
        c.execute(text("UPDATE deliveries SET worker_id = 'other' WHERE id IN (:a, :b)"),
                  {"a": ids[3], "b": ids[7]})
    assert sorted(ledger.finish(pg, "me", outcomes(ids[:4]))) == sorted(ids[:3])
    writer = OutcomeWriter(pg.engine)
    done = []
    for o in outcomes(ids[4:]):
        writer.start("me", o)
        done.append(writer.wait())
    writer.close()
    assert done == [True, True, True, False]
    rows = _rows(pg)
    assert [rows[i] for i in ids[:4]] == [rows[i] for i in ids[4:]]
    assert [r[0] for r in (rows[i] for i in ids[4:])] == ["sent", "retry", "failed", "sending"]


def test_a_connection_that_died_is_opened_again_and_the_outcome_recorded(pg, settings_for):
    with SmtpSink() as sink:
        planned_world(pg, mail_settings(settings_for, pg, sink), 3)
    now = datetime.now(UTC)
    ids = ledger.claim(pg, "me", now, 3)
    writer = OutcomeWriter(pg.engine)
    writer.start("me", ledger.Outcome(ids[0], S.SENT, attempts=1, sent_at=now, subject="one"))
    assert writer.wait()
    pid = writer.conn.pgconn.backend_pid
    with pg.engine.begin() as c:
        c.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    time.sleep(0.2)
    writer.start("me", ledger.Outcome(ids[1], S.SENT, attempts=1, sent_at=now, subject="two"))
    assert writer.wait() and writer.conn.pgconn.backend_pid != pid
    writer.close()
    with pg.session() as s:
        assert dict(s.execute(select(Delivery.id, Delivery.status).where(Delivery.id.in_(ids))).all()) == {
            ids[0]: "sent", ids[1]: "sent", ids[2]: "sending"}


def _slow_outcomes(db, seconds: float, fail: bool = False) -> None:
    """Every outcome `sent` takes `seconds` to commit (or fails after them, with `fail`)."""
    then = "RAISE EXCEPTION 'the ledger refused it'; " if fail else ""
    with db.engine.begin() as c:
        c.execute(text("CREATE FUNCTION slow_outcome() RETURNS trigger AS $$ BEGIN "
                       f"PERFORM pg_sleep({seconds}); {then}RETURN NEW; END $$ LANGUAGE plpgsql"))
        c.execute(text("CREATE TRIGGER slow_outcome BEFORE UPDATE ON deliveries FOR EACH ROW WHEN "
                       "(NEW.status = 'sent' AND OLD.status = 'sending') EXECUTE FUNCTION slow_outcome()"))


def _fast_outcomes(db) -> None:
    with db.engine.begin() as c:
        c.execute(text("DROP TRIGGER slow_outcome ON deliveries"))


def _config(tmp_path: Path, db_url: str, sink, lease: float) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[database]\nurl = "{db_url}"\n'
                   f'[web]\nbase_url = "{BASE}"\nsecret_file = "{tmp_path / "secret"}"\n'
                   f'[mail]\ntransport = "smtp"\nfrom_address = "Trending Papers <digest@example.org>"\n'
                   f'lease_seconds = {lease}\n'
                   f'[mail.smtp]\nhost = "{sink.host}"\nport = {sink.port}\n')
    return cfg


def _send(cfg: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SENDER, str(cfg)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.mark.slow
def test_killed_while_an_outcome_commits_the_next_message_is_not_ended_and_at_most_one_comes_twice(
        pg, db_url, settings_for, tmp_path):
    """The first outcome takes 2 s to commit: meanwhile the sender's connection has the next message
    all but its ending dot, and the relay has nothing more. SIGKILL then; once the leases run out a
    new sender delivers the rest: every recipient has their digest, at most one twice."""
    n, lease = 5, 1.0
    with SmtpSink() as sink:
        planned_world(pg, mail_settings(settings_for, pg, sink, lease_seconds=lease), n)
        _slow_outcomes(pg, 2.0)
        cfg = _config(tmp_path, db_url, sink, lease)
        proc = _send(cfg)
        _wait_for(lambda: sink.handler.received >= 1)
        time.sleep(1.0)  # the outcome is still committing: the next message must not be complete
        assert sink.handler.received == 1
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        _fast_outcomes(pg)
        time.sleep(lease + 0.5)
        final = _send(cfg)
        out, err = final.communicate(timeout=120)
        assert final.returncode == 0, err.decode()[-2000:]
        assert json.loads(out)["errors"] == []
        messages = list(sink.messages)
    with pg.session() as s:
        assert Counter(s.scalars(select(Delivery.status))) == {"sent": n}
    got = Counter(m.recipients[0] for m in messages)
    assert set(got) == {addr(i) for i in range(n)}
    assert sum(got.values()) - n <= 1


def test_an_outcome_the_ledger_refuses_leaves_the_next_message_undelivered(pg, settings_for):
    """The first `sent` fails to commit: the message after it, all but sent, is not ended (the relay
    never has it), the run stops, and both are left to their leases; the next run sends them."""
    from digest.delivery.sender import send

    n, lease = 4, 1.0
    with SmtpSink() as sink:
        settings = mail_settings(settings_for, pg, sink, lease_seconds=lease)
        planned_world(pg, settings, n)
        _slow_outcomes(pg, 0.3, fail=True)
        first = send(pg, settings)
        assert first.sent == 0 and first.errors and "the ledger refused it" in first.errors[0]
        assert sink.handler.received == 1  # the first one; the second was held back, then dropped
        _fast_outcomes(pg)
        time.sleep(lease + 0.2)
        rest = send(pg, settings)
        assert rest.sent == n and not rest.errors
        got = Counter(m.recipients[0] for m in sink.messages)
    assert set(got) == {addr(i) for i in range(n)}
    assert sum(got.values()) == n + 1  # the first, whose outcome was never recorded, came twice

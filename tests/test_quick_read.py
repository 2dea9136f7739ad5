"""digest.store.quick_read (speed work, issue 25) answers `digest status` and `digest due` exactly as the
ORM store does: both readers run the same use cases over the same database (real SQLite, real
PostgreSQL in its own schema), with subscribers of several cadences, time zones and states, papers,
feedback, sources with errors, deliveries in every state, leases, suppressions and scheduler jobs.
The results are compared as values and as their repr (time zones, bools and ints included)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from digest.records import DeliveryStatus as S
from digest.store import models as m
from digest.store import quick_read
from digest.store.db import Database
from digest.usecases import planning
from digest.usecases import status as admin_status
from digest.usecases.reads import StoreReads

NOW = datetime(2026, 3, 30, 6, 30, tzinfo=UTC)  # a Monday: weekly and weekday cadences are in play


def populate(db) -> None:
    with db.session() as s:
        papers = [m.Paper(title_key=f"p{i}", title=f"Paper {i}", first_seen_at=NOW - timedelta(hours=i))
                  for i in range(4)]
        s.add_all(papers)
        subs = [
            m.Subscriber(email="ada@example.org", name="Ada", frequency="daily", hour=7,
                         timezone="Europe/Paris", created_at=NOW - timedelta(days=40)),
            m.Subscriber(email="bob@example.org", frequency="weekly", weekday=0, hour=6,
                         timezone="America/New_York", best_of_week=True, min_papers=3,
                         created_at=NOW - timedelta(days=20)),
            m.Subscriber(email="cy@example.org", frequency="weekdays", hour=9, timezone="Asia/Tokyo",
                         max_items=5, created_at=NOW - timedelta(days=3)),
            m.Subscriber(email="dee@example.org", status="paused", paused_until=NOW - timedelta(days=1),
                         created_at=NOW - timedelta(days=9)),
            m.Subscriber(email="eve@example.org", status="paused", paused_until=NOW + timedelta(days=5),
                         created_at=NOW - timedelta(days=9)),
            m.Subscriber(email="fay@example.org", status="unsubscribed",
                         unsubscribed_at=NOW - timedelta(days=2), created_at=NOW - timedelta(days=9)),
            m.Subscriber(email="gus@example.org", timezone="Australia/Sydney", hour=23,
                         created_at=NOW - timedelta(days=9), channel="slack",
                         webhook_hint="slack:3f2a9c1b7d4e"),
            m.Subscriber(email="hal@example.org", status="pending", created_at=NOW - timedelta(days=1)),
        ]
        s.add_all(subs)
        s.flush()
        ada, bob, cy, dee, _, _, gus, _ = subs
        s.add_all([m.Topic(subscriber_id=ada.id, phrase="graph neural networks", weight=2.0),
                   m.Topic(subscriber_id=ada.id, phrase="survey", kind="exclude"),
                   m.Topic(subscriber_id=ada.id, phrase="Yann LeCun", kind="author"),
                   m.Topic(subscriber_id=bob.id, phrase="diffusion"),
                   m.Topic(subscriber_id=cy.id, phrase="speech", weight=0.5),
                   m.Feedback(subscriber_id=ada.id, paper_id=papers[0].id, signal=1),
                   m.Feedback(subscriber_id=ada.id, paper_id=papers[1].id, signal=-1)])

        def delivery(sub, period, status, planned, **kw):
            return m.Delivery(subscriber_id=sub.id, email=sub.email, period=period, status=status,
                              message_id=f"<{sub.id}.{period}@example.org>", planned_at=planned,
                              window_end=planned, **kw)

        s.add_all([
            delivery(ada, "2026-03-28", S.SENT, NOW - timedelta(days=2),
                     sent_at=NOW - timedelta(days=2, hours=-1)),
            delivery(ada, "2026-03-29", S.FAILED, NOW - timedelta(days=1),
                     last_error="550 mailbox unavailable"),
            delivery(bob, "2026-W12", S.FAILED, NOW - timedelta(days=14), last_error="timed out"),
            delivery(bob, "2026-W13", S.QUIET, NOW - timedelta(days=7), note="2 papers, below 3"),
            delivery(cy, "2026-03-27", S.SENDING, NOW - timedelta(days=3), worker_id="elsewhere:4242:send",
                     lease_expires_at=NOW + timedelta(days=400)),
            delivery(cy, "2026-03-26", S.SENDING, NOW - timedelta(days=4), worker_id="gone-host:1:send",
                     lease_expires_at=NOW - timedelta(days=1)),
            delivery(dee, "2026-03-25", S.RETRY, NOW - timedelta(days=5), next_attempt_at=NOW,
                     last_error="421 try later"),
            delivery(gus, "2026-03-29", S.PLANNED, NOW - timedelta(hours=20)),
            m.Suppression(email="dee@example.org", reason="hard_bounce", detail="5.1.1"),
            m.Suppression(email="nobody@example.org", reason="manual"),
            m.SourceState(name="sample", last_run_at=NOW, last_success_at=NOW - timedelta(hours=1),
                          last_error_at=NOW, last_error="HTTP 503 from the listing", total_fetched=12,
                          http_cache={"https://example.org/a": {"etag": "x"}}),
            m.SourceState(name="gone", last_success_at=NOW - timedelta(days=30)),
            m.JobState(job_id="tick", next_run_at=NOW + timedelta(minutes=5), last_started_at=NOW,
                       last_finished_at=NOW + timedelta(seconds=3), last_ok=True, last_summary="2 planned",
                       instance="host:1"),
            m.JobState(job_id="housekeeping", last_finished_at=NOW, last_ok=False, last_summary="boom"),
            m.JobState(job_id="ingest:old", last_ok=None),
        ])


def same(a, b) -> None:
    assert a == b
    assert json.dumps(a, default=repr, sort_keys=False) == json.dumps(b, default=repr, sort_keys=False)


def test_status_and_due_read_the_same_through_both_readers(db, db_url, settings_for):
    populate(db)
    settings = settings_for(db_url)
    orm = StoreReads(db)
    quick = quick_read.open_reader(db_url)
    assert quick is not None, "the quick reader should answer a current database"
    try:
        assert quick.where == orm.where
        same(admin_status.status(quick, settings), admin_status.status(orm, settings))
        found = admin_status.status(quick, settings)
        assert found["papers"] == 4 and found["suppressed"] == 2 and len(found["leases"]) == 2
        assert [f["error"] for f in found["recent_failures"]] == ["timed out", "550 mailbox unavailable"]
        for at in (NOW, NOW + timedelta(hours=3), NOW + timedelta(days=2, hours=17), NOW - timedelta(days=6)):
            rows = planning.due_at(quick, at)
            same(rows, planning.due_at(orm, at))
            same(planning.due_at(quick, at, email="bob@example.org"),
                 planning.due_at(orm, at, email="bob@example.org"))
        assert {r["email"] for r in planning.due_at(quick, NOW)} == {
            "ada@example.org", "bob@example.org", "cy@example.org", "dee@example.org", "gus@example.org"}
        for sub_q, sub_o in zip(quick.mailable_batch(NOW, 0, 2), orm.mailable_batch(NOW, 0, 2), strict=True):
            same(repr(sub_q), repr(sub_o))  # every field of the records, topics, weights and feedback too
        same(quick.source_states(), orm.source_states())
        same(quick.last_editions([1, 2, 3, 4, 7]), orm.last_editions([1, 2, 3, 4, 7]))
    finally:
        quick.close()


def test_the_quick_reader_leaves_a_database_that_is_not_current_to_the_normal_path(db, db_url, tmp_path):
    assert quick_read.open_reader(f"sqlite:///{tmp_path / 'missing.db'}") is None
    assert not (tmp_path / "missing.db").exists()  # nothing created
    assert quick_read.open_reader("sqlite://") is None  # in memory: its own database, nothing to read
    with db.session() as s:
        s.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    assert quick_read.open_reader(db_url) is None


@pytest.mark.sqlite_only
def test_digest_status_and_due_print_the_same_through_either_reader(db_url, tmp_path):
    """The commands themselves, on the same database file: with a configured secret they read through
    the quick reader; with none configured or kept, opening the database would generate one, so they
    take the normal path (the file is put back as it was before each run)."""
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n[digest]\nranker = "lexical"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "DIGEST_SECRET"} | {"DIGEST_CONFIG": str(config)}
    path = Path(db_url.removeprefix("sqlite:///"))

    def run(*args: str, secret: bool) -> str:
        proc = subprocess.run([sys.executable, "-m", "digest.cli", *args], capture_output=True, text=True,
                              env={**env, **({"DIGEST_SECRET": "s-" + "x" * 32} if secret else {})},
                              timeout=120, check=True)
        return proc.stdout

    run("init", secret=True)  # a configured secret: none is kept in the database
    database = Database(db_url)
    populate(database)
    database.dispose()
    pristine = path.read_bytes()
    for args in (["status"], ["status", "--json"], ["due", "--all", "--at", NOW.isoformat()],
                 ["due", "--json", "--all", "--at", (NOW + timedelta(days=2, hours=17)).isoformat()]):
        path.write_bytes(pristine)
        normal = run(*args, secret=False)
        assert quick_read.open_reader(db_url).signing_secrets()  # the normal path kept a new secret
        path.write_bytes(pristine)
        assert run(*args, secret=True) == normal
        assert "ada@example.org" in normal or args == ["status"] and "550 mailbox unavailable" in normal


@pytest.mark.sqlite_only
def test_a_first_open_that_would_adopt_an_earlier_secret_takes_the_normal_path(db, db_url, settings_for):
    """The quick reader only reads: an earlier version's secret file waiting to be adopted sends the
    command the normal way (which keeps it); then both ways sign and verify with the same secrets, and
    say the same notice."""
    from digest.usecases import setup

    settings = settings_for(db_url)
    settings.earlier_secret_file().write_text("an-earlier-versions-secret\n", encoding="utf-8")
    assert setup.quick_reads(settings) is None
    normal = settings_for(db_url)
    setup.open_database(normal, "check")[0].dispose()  # adopts it
    quick = settings_for(db_url)
    reader = setup.quick_reads(quick)
    assert reader is not None
    reader.close()
    assert quick.secrets() == normal.secrets() and "an-earlier-versions-secret" in quick.secrets()
    assert quick.take_notices() == normal.take_notices() != []

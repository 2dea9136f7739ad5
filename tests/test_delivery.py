"""Sending through the ledger against a real SMTP server (aiosmtpd) that misbehaves on purpose.

Every test checks two things: each delivery ends in the right state, and the server holds each
accepted message exactly once.
"""

from __future__ import annotations

import email
import email.policy
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import event, func, select, update

from digest.delivery.bounces import Bounce
from digest.delivery.ledger import claim, hold
from digest.delivery.sender import send
from digest.mail.sink import Faults, SmtpSink
from digest.mail.transport import SmtpTransport, TransportUnavailable
from digest.render import GMAIL_CLIP_BYTES
from digest.sources.ingest import ingest
from digest.store.db import Database
from digest.store.models import Delivery, Subscriber, Suppression, Topic
from tests.factories import (
    BASE,
    add_papers,
    add_subscribers,
    addr,
    all_rows,
    mail_settings,
    plan_editions,
    planned_world,
)


def states(db: Database) -> dict[str, tuple[str, int]]:
    with db.session() as s:
        return {e: (st, a) for e, st,
                a in s.execute(select(Delivery.email, Delivery.status, Delivery.attempts))}


def received_ids(sink: SmtpSink) -> Counter:
    return Counter(m.message_id for m in sink.messages)


def test_faults_every_recipient_ends_right_and_each_message_arrives_once(db, settings_for):
    faults = Faults(temporary={addr(1): 1, addr(2): 99}, reject={addr(3), addr(4)}, drop_at={6}, busy_at={9},
                    delay=0.02)
    with SmtpSink(faults=faults) as sink:
        settings = mail_settings(settings_for, db, sink, max_attempts=3)
        ids = planned_world(db, settings, 12)

        first = send(db, settings)
        assert (first.sent, first.retried, first.failed, first.errors) == (8, 2, 2, [])
        got = states(db)
        assert got[addr(1)] == ("retry", 1) and got[addr(2)] == ("retry", 1)
        assert got[addr(3)] == ("failed", 1) and got[addr(4)] == ("failed", 1)
        assert all(got[addr(i)] == ("sent", 1) for i in (0, *range(5, 12)))

        # retries are not due yet; a day later they are
        assert send(db, settings).sent == 0
        later = datetime.now(UTC) + timedelta(days=1)
        second = send(db, settings, now=later)
        assert (second.sent, second.retried) == (1, 1)
        third = send(db, settings, now=later + timedelta(days=1))
        assert (third.sent, third.failed) == (0, 1)
        got = states(db)
        assert got[addr(1)] == ("sent", 2) and got[addr(2)] == ("failed", 3)

        # the server holds every accepted message exactly once, with the Message-ID stored at planning
        sent = {e for e, (st, _) in got.items() if st == "sent"}
        assert received_ids(sink) == Counter({ids[e]: 1 for e in sent})
        assert {m.recipients[0] for m in sink.messages} == sent
        assert sink.handler.transactions > len(sent)  # the faults really happened

    with db.session() as s:
        # 550 twice: hard bounces, suppressed by the default policy (1 hard); 450 until the end: one soft
        assert dict(s.execute(select(Suppression.email, Suppression.reason)).all()) == {
            addr(3): "hard_bounce", addr(4): "hard_bounce"}
        kinds = sorted(s.execute(select(Bounce.email, Bounce.kind, Bounce.status)).all())
        assert kinds == [(addr(2), "soft", "4.2.0"), (addr(3), "hard", "5.1.1"), (addr(4), "hard", "5.1.1")]
        errors = dict(s.execute(select(Delivery.email, Delivery.last_error)).all())
        assert errors[addr(3)].startswith("550 5.1.1") and errors[addr(2)].startswith("450 4.2.0")


def test_pool_of_connections_with_slow_server(db, settings_for):
    with SmtpSink(faults=Faults(delay=0.05, reject={addr(5)})) as sink:
        settings = mail_settings(settings_for, db, sink, smtp={"pool_size": 3})
        ids = planned_world(db, settings, 12)
        pool = [SmtpTransport(sink.host, sink.port) for _ in range(settings.mail.smtp.pool_size)]
        report = send(db, settings, transport=pool)
        assert (report.sent, report.failed) == (11, 1)
        assert [t.connects for t in pool] == [1, 1, 1]  # each thread kept its one connection
        assert received_ids(sink) == Counter({i: 1 for e, i in ids.items() if e != addr(5)})
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "sent")) == 11


def test_a_claim_that_loses_its_rows_to_another_sender_takes_the_next_ones(db, settings_for):
    """Two senders on one database, the second taking the rows the first has just chosen (on SQLite,
    which has no row locks, that happens between the claim's SELECT and its UPDATE): the first takes
    other rows, not none. A sender whose claim comes back empty stops, thinking nothing is due."""
    with SmtpSink() as sink:
        settings = mail_settings(settings_for, db, sink)
        planned_world(db, settings, 6)
    other, now, theirs = Database(db.url), datetime.now(UTC), []

    def meanwhile(conn, cursor, statement, *args) -> None:
        if not theirs and statement.lstrip().upper().startswith("SELECT"):
            theirs.extend(claim(other, "second-worker", now, 3))

    event.listen(db.engine, "after_cursor_execute", meanwhile)
    try:
        mine = claim(db, "first-worker", now, 3)
    finally:
        event.remove(db.engine, "after_cursor_execute", meanwhile)
        other.dispose()
    assert len(theirs) == 3 and len(mine) == 3 and not set(mine) & set(theirs)
    with db.session() as s:
        held = dict(s.execute(select(Delivery.id,
                                     Delivery.worker_id).where(Delivery.status == "sending")).all())
    assert held == {**dict.fromkeys(mine, "first-worker"), **dict.fromkeys(theirs, "second-worker")}


@pytest.mark.sqlite_only
def test_connection_reused_and_reconnects_after_drop_and_421(db, settings_for):
    with SmtpSink(faults=Faults(drop_at={3}, busy_at={5})) as sink:
        settings = mail_settings(settings_for, db, sink)
        ids = planned_world(db, settings, 6)
        transport = SmtpTransport(sink.host, sink.port)
        report = send(db, settings, transport=transport)
        assert report.sent == 6 and report.retried == 0
        assert transport.connects == 3  # one connection, plus one after each fault
        assert received_ids(sink) == Counter({i: 1 for i in ids.values()})


def test_server_down_claims_nothing_and_mid_run_outage_gives_deliveries_back(db, settings_for):
    with SmtpSink() as sink:
        settings = mail_settings(settings_for, db, sink)
        ids = planned_world(db, settings, 5)
    down = send(db, settings)  # the sink is gone
    assert down.sent == 0 and down.errors and "SMTP" in down.errors[0]
    assert {st for st, _ in states(db).values()} == {"planned"}

    with SmtpSink() as sink:
        settings = mail_settings(settings_for, db, sink)

        class Outage(SmtpTransport):
            def send(self, data, sender, recipient):
                if len(sink.messages) == 2:
                    raise TransportUnavailable("relay went away")
                super().send(data, sender, recipient)

        cut = send(db, settings, transport=Outage(sink.host, sink.port))
        assert cut.sent == 2 and cut.errors == ["relay went away"]
        left = [st for st, _ in states(db).values()]
        assert sorted(left) == ["planned"] * 3 + ["sent"] * 2  # given back at once, attempts untouched
        rest = send(db, settings)
        assert rest.sent == 3 and not rest.errors
        assert received_ids(sink) == Counter({i: 1 for i in ids.values()})


def test_expired_lease_is_resumed_and_a_live_one_is_left_alone(db, settings_for):
    with SmtpSink() as sink:
        settings = mail_settings(settings_for, db, sink)
        ids = planned_world(db, settings, 4)
        now = datetime.now(UTC)
        crashed = claim(db, "crashed-worker", now, 2)  # claimed, then the process died
        busy = claim(db, "busy-worker", now, 1)  # claimed by a worker that is still alive
        with db.session() as s:
            s.execute(update(Delivery).where(Delivery.id.in_(crashed))
                      .values(lease_expires_at=now - timedelta(seconds=1)))
        report = send(db, settings, worker="me")
        assert report.sent == 3
        with db.session() as s:
            row = s.get(Delivery, busy[0])
            assert (row.status, row.worker_id) == ("sending", "busy-worker")
            # once someone else holds it, the old worker may not send it
            assert not hold(db, crashed[0], "crashed-worker", timedelta(minutes=1))
        assert len(sink.messages) == 3 and set(received_ids(sink)) <= set(ids.values())


def test_a_lease_near_its_end_is_taken_again_and_one_taken_over_is_not_sent(db, settings_for):
    """A sender that was slow (here: each message takes a third of the lease) takes its lease again
    before sending once a quarter of it is left; what another worker took over meanwhile stays theirs."""
    with SmtpSink() as sink:
        settings = mail_settings(settings_for, db, sink, lease_seconds=1.5)
        planned_world(db, settings, 4)
        with db.session() as s:
            stolen, stolen_mid = s.execute(select(Delivery.id,
                                                  Delivery.message_id).order_by(Delivery.id.desc())).first()

        class Slow(SmtpTransport):
            def send(self, data, sender, recipient):
                super().send(data, sender, recipient)
                # meanwhile the last one's lease ran out and another worker took it
                if len(sink.messages) == 1:
                    with db.session() as s:
                        s.execute(update(Delivery).where(Delivery.id == stolen)
                                  .values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1)))
                    assert claim(db, "other-worker", datetime.now(UTC), 5) == [stolen]
                time.sleep(0.5)

        report = send(db, settings, transport=Slow(sink.host, sink.port), worker="me")
        assert report.sent == 3 and len(received_ids(sink)) == 3 and stolen_mid not in received_ids(sink)
        with db.session() as s:
            assert s.get(Delivery, stolen).worker_id == "other-worker"
            sent = s.scalars(select(Delivery.sent_at).where(Delivery.status == "sent")).all()
        assert len(sent) == 3


def test_send_time_suppression_and_unsubscribed(db, settings_for):
    with SmtpSink() as sink:
        settings = mail_settings(settings_for, db, sink)
        planned_world(db, settings, 3)
        with db.session() as s:  # after planning: one bounced elsewhere, one unsubscribed
            s.add(Suppression(email=addr(0), reason="hard_bounce"))
            s.execute(update(Subscriber).where(Subscriber.email == addr(1)).values(status="unsubscribed"))
        report = send(db, settings)
        assert (report.sent, report.suppressed) == (1, 2)
        assert [m.recipients for m in sink.messages] == [[addr(2)]]
        assert states(db)[addr(0)] == ("suppressed", 0)


@pytest.mark.sqlite_only
def test_a_hundred_papers_stay_under_gmail_clipping(db, settings_for):
    with SmtpSink() as sink:
        settings = mail_settings(settings_for, db, sink)
        add_subscribers(db, 1)
        plan_editions(db, settings, add_papers(db, 100))
        assert send(db, settings).sent == 1
        msg = sink.messages[0].message
        html = msg.get_body(("html",)).get_content()
        assert len(html.encode()) < GMAIL_CLIP_BYTES
        more = int(html.split(" more papers in this edition on the web")[0].rsplit(">", 1)[1])
        assert 0 < more < 100
        text = msg.get_body(("plain",)).get_content()
        assert f"{more} more papers in this edition on the web: {BASE}/archive/" in text


@pytest.mark.sqlite_only
def test_rate_limit_and_window_are_applied_per_message(db, settings_for):
    from digest.mail.ratelimit import RateLimiter

    class Clock:
        t = 0.0
        waits: list[float] = []

        def now(self) -> float:
            return self.t

        def sleep(self, s: float) -> None:
            self.waits.append(s)
            self.t += s

    clock = Clock()
    with SmtpSink() as sink:
        settings = mail_settings(settings_for, db, sink)
        planned_world(db, settings, 6)
        limiter = RateLimiter(rate=2.0, window_limit=4, window_seconds=60, clock=clock.now, sleep=clock.sleep)
        assert send(db, settings, limiter=limiter).sent == 6
    # 2/s with a 2-message burst, and only 4 per minute: the 5th waits for the window to slide
    assert clock.t == pytest.approx(60.0)


@pytest.mark.sqlite_only
def test_cli_send_prints_counts(db, settings_for, tmp_path):
    from digest.cli import main

    with SmtpSink(faults=Faults(reject={addr(1)})) as sink:
        cfg = tmp_path / "config.toml"
        cfg.write_text(f'[database]\nurl = "{db.url}"\n[web]\nbase_url = "{BASE}"\nsecret_file = '
                       f'"{tmp_path / "s"}"\n'
                       f'[mail]\ntransport = "smtp"\nfrom_address = "digest@example.org"\n'
                       f'[mail.smtp]\nhost = "{sink.host}"\nport = {sink.port}\n')
        ingest(db, mail_settings(settings_for, db, sink))
        add_subscribers(db, 3)
        with db.session() as s:
            s.add(Subscriber(email="nothing@example.org", status="active",
                             topics=[Topic(phrase="zzqx unfindable")]))
        out = CliRunner().invoke(main, ["--config", str(cfg), "send"])
        assert out.exit_code == 0, out.output
        assert out.output.strip().splitlines()[-2:] == [
            "sent 2, retried 0, failed 1, suppressed 0, skipped 1 (nothing new)",
            f"mail went to the SMTP relay {sink.host}:{sink.port}"]
        again = CliRunner().invoke(main, ["--config", str(cfg), "send"])
        assert "sent 0" in again.output and len(sink.messages) == 2
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Suppression)) == 1


@pytest.mark.sqlite_only
def test_message_as_received_has_every_list_header(db, settings_for):
    with SmtpSink() as sink:
        settings = mail_settings(settings_for, db, sink, reply_to="editor@example.org")
        ids = planned_world(db, settings, 1)
        send(db, settings)
        raw = sink.messages[0].data
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Message-ID"] == ids[addr(0)] and msg["Reply-To"] == "editor@example.org"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Unsubscribe"].startswith(f"<{BASE}/unsubscribe/")
    assert msg["List-Unsubscribe"].endswith(", <mailto:unsubscribe@example.org?subject=unsubscribe>")
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    unsubscribe = msg["List-Unsubscribe"].split(">", 1)[0].lstrip("<")
    for part in ("plain", "html"):  # the same link, visible in both parts
        assert unsubscribe in msg.get_body((part,)).get_content()


@pytest.mark.sqlite_only
def test_one_unsendable_delivery_fails_alone_and_idn_domains_work(db, settings_for):
    with SmtpSink() as sink:
        settings = mail_settings(settings_for, db, sink)
        planned_world(db, settings, 4)
        with db.session() as s:  # bad data that slipped past validation; an address SMTP needs SMTPUTF8 for
            s.execute(update(Subscriber).where(Subscriber.email == addr(1)).values(timezone="Not/AZone"))
            s.execute(update(Delivery).where(Delivery.email == addr(2)).values(email="jürgen@example.org"))
            s.execute(update(Delivery).where(Delivery.email == addr(3)).values(email="ana@bücher.de"))
        report = send(db, settings)
        assert (report.sent, report.failed) == (2, 2)
        assert [m.recipients[0] for m in sink.messages] == [addr(0), "ana@xn--bcher-kva.de"]
    with db.session() as s:
        errors = dict(s.execute(select(Delivery.email, Delivery.last_error)).all())
    assert errors[addr(1)].startswith("render error") and "SMTPUTF8" in errors["jürgen@example.org"]


@pytest.mark.sqlite_only
def test_cli_send_warns_when_smtp_links_are_plain_http(db, tmp_path):
    from digest.cli import main

    with SmtpSink() as sink:
        for base, warned in (("http://papers.example.org", True), (BASE, False)):
            cfg = tmp_path / "config.toml"
            cfg.write_text(f'[database]\nurl = "{db.url}"\n[sources]\n[web]\nbase_url = "{base}"\n'
                           f'secret_file = "{tmp_path / "s"}"\n[mail]\ntransport = "smtp"\n'
                           f'[mail.smtp]\nhost = "{sink.host}"\nport = {sink.port}\n')
            out = CliRunner().invoke(main, ["--config", str(cfg), "send"])
            assert out.exit_code == 0, out.output
            assert ("warning: web.base_url" in out.stderr) is warned, out.stderr
            assert out.stdout.startswith("sent 0")


def test_a_stored_address_that_cannot_be_sent_fails_that_delivery_in_one_line(db, settings_for, caplog):
    """issue 13: an address with a non-ASCII local part (stored before the door refused them) logged a
    full traceback at `digest send`; now that delivery fails in one line and the others go out."""
    with SmtpSink() as sink:
        settings = mail_settings(settings_for, db, sink)
        pids = add_papers(db, 3)
        add_subscribers(db, 2)
        with db.session() as s:
            s.add(Subscriber(email="ädä@example.org", status="active", topics=[Topic(phrase="x")]))
        plan_editions(db, settings, pids)
        report = send(db, settings)
    # the admin's to fix (issue 23 item 11): said once in the report's errors, so `digest send` exits 1
    assert (report.sent, report.failed, report.errors) == (2, 1, [
        "1 deliveries could not be made, the first: address error: 'ädä@example.org': a non-ASCII local "
        "part needs SMTPUTF8, which is not supported"])
    assert states(db)["ädä@example.org"] == ("failed", 0)
    (failed,) = all_rows(db, Delivery, Delivery.status == "failed")
    assert failed.last_error.startswith("address error: 'ädä@example.org': a non-ASCII local part needs "
                                        "SMTPUTF8")
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)

"""Bounce reports (RFC 3464 DSNs) and complaints (ARF) from a Maildir or mbox, and the suppression policy."""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from digest.cli import main
from digest.delivery.bounces import Bounce, classify, parse_report, process_mailbox, record
from digest.store.models import Delivery, Suppression
from tests.factories import all_rows, planned_world


def dsn(recipient: str, status: str = "5.1.1", action: str = "failed", message_id: str | None = None,
        dsn_id: str = "<dsn-1@mx.example.net>", diagnostic: str = "smtp; 550 5.1.1 User unknown") -> bytes:
    """A delivery status notification the way Postfix writes one."""
    original = f"Message-ID: {message_id}\n" if message_id else ""
    return f"""From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: digest@example.org
Subject: Undelivered Mail Returned to Sender
Message-ID: {dsn_id}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"

--B1
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not be delivered.

--B1
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: 4Xy1
Arrival-Date: Sun, 22 Nov 2026 08:00:01 +0000

Final-Recipient: rfc822; {recipient.upper()}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.com
Diagnostic-Code: {diagnostic}

--B1
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Trending Papers <digest@example.org>
To: {recipient}
{original}Subject: 3 new papers for you

--B1--
""".encode()


def arf(recipient: str, message_id: str | None = None, report_id: str = "<arf-1@fbl.example.net>") -> bytes:
    original = f"Message-ID: {message_id}\n" if message_id else ""
    return f"""From: fbl@fbl.example.net
To: digest@example.org
Subject: complaint about message
Message-ID: {report_id}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="B2"

--B2
Content-Type: text/plain

This is an email abuse report.

--B2
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeFBL/1.0
Version: 1

--B2
Content-Type: message/rfc822

From: Trending Papers <digest@example.org>
To: {recipient}
{original}Subject: 3 new papers for you

Hello
--B2--
""".encode()


AUTOREPLY = b"From: ada@example.org\nTo: digest@example.org\nSubject: Out of office\n\nBack on Monday.\n"


def parse(data: bytes):
    return parse_report(email.message_from_bytes(data, policy=email.policy.default))


@pytest.mark.parametrize(("status", "action", "kind"), [
    ("5.1.1", "failed", "hard"), ("5.7.1", "failed", "hard"), ("5.2.2", "failed", "soft"),  # mailbox full
    ("4.4.7", "failed", "soft"), ("4.2.0", "delayed", "soft"), ("2.0.0", "delivered", None),
    ("2.0.0", "relayed", None), (None, "failed", "hard"), ("550", None, "hard"), ("451", None, "soft"),
])
def test_classify(status, action, kind):
    assert classify(status, action) == kind


def test_parse_dsn_and_complaint():
    [hard] = parse(dsn("ada@example.org", message_id="<digest.1.x@example.org>"))
    assert (hard.email, hard.kind, hard.status, hard.message_id) == ("ada@example.org", "hard", "5.1.1",
                                                                      "<digest.1.x@example.org>")
    assert hard.detail == "smtp; 550 5.1.1 User unknown"
    assert parse(dsn("ada@example.org", "2.0.0", "delivered")) == []
    [complaint] = parse(arf("grace@example.org"))
    assert (complaint.email, complaint.kind, complaint.detail) == ("grace@example.org", "complaint", "abuse")
    assert parse(AUTOREPLY) == [] and parse(b"\xff\xfe not mail at all") == []


def test_report_type_picks_the_parser():
    two = dsn("ada@example.org").replace(b"Diagnostic-Code: smtp; 550 5.1.1 User unknown\n", (
        b"Diagnostic-Code: smtp; 550 5.1.1 User unknown\n\n"
        b"Final-Recipient: rfc822; grace@example.org\nAction: delayed\nStatus: 4.4.1\n"))
    assert [(e.email, e.kind, e.source) for e in parse(two)] == [("ada@example.org", "hard", "dsn"),
                                                                 ("grace@example.org", "soft", "dsn")]
    assert parse(dsn("ada@example.org").replace(b"report-type=delivery-status",
                                                b"report-type=feedback-report")) == []
    assert parse(arf("grace@example.org").replace(b"report-type=feedback-report",
                                                  b"report-type=delivery-status")) == []
    assert parse(dsn("ada@example.org").replace(b"report-type=delivery-status",
                                                b"report-type=disposition")) == []


def test_maildir_and_policy_then_planning_skips_suppressed(db, settings_for, tmp_path):
    settings = settings_for(db.url)
    ids = planned_world(db, settings, 4)
    a, b, c, d = sorted(ids)
    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    box.add(dsn(a, message_id=ids[a]))  # linked to our message by its Message-ID
    fwd = "someone-forwarded@elsewhere.example"  # quotes c's message but names another: that one alone
    box.add(dsn(fwd, message_id=ids[c], dsn_id="<fwd@mx.example.net>"))
    for i in range(3):  # soft bounces: the third suppresses (default policy: 3)
        box.add(dsn(b, "4.2.2", "failed", dsn_id=f"<soft-{i}@mx.example.net>"))
    box.add(dsn(c, "4.4.1", "delayed", dsn_id="<delayed@mx.example.net>"))  # one soft: not yet
    box.add(arf(d, message_id=ids[d]))
    box.add(AUTOREPLY)

    report = process_mailbox(db, settings, maildir=tmp_path / "bounces")
    assert (report.messages, report.hard, report.soft, report.complaints,
            report.not_reports) == (8, 2, 4, 1, 1)
    assert sorted(report.suppressed) == sorted([a, b, d, fwd])
    with db.session() as s:
        assert dict(s.execute(select(Suppression.email, Suppression.reason)).all()) == {
            a: "hard_bounce", b: "soft_bounce", d: "complaint", fwd: "hard_bounce"}
        linked = s.scalar(select(Bounce.delivery_id).where(Bounce.email == a))
        assert linked == s.scalar(select(Delivery.id).where(Delivery.email == a))

    again = process_mailbox(db, settings, maildir=tmp_path / "bounces")  # the same mailbox: nothing new
    assert (again.already, again.hard, again.soft, again.suppressed) == (7, 0, 0, [])

    # the planner leaves suppressed addresses out; the sender re-checks at send time
    from digest.usecases import planning

    with db.session() as s:
        s.query(Delivery).delete()
    plan = planning.plan(db, settings)
    assert plan.suppressed == 3


@pytest.mark.sqlite_only
def test_policy_is_configurable_and_old_bounces_expire(db, settings_for):
    settings = settings_for(db.url,
                            mail={"bounce_hard_limit": 2, "bounce_soft_limit": 2, "bounce_window_days": 7})
    old = datetime.now(UTC) - timedelta(days=8)
    with db.session() as s:
        assert record(s, settings, address="x@example.org", kind="hard", source="dsn",
                      key="1") == (True, None)
        assert record(s, settings, address="X@example.org", kind="hard", source="dsn",
                      key="1") == (False, None)
        assert record(s, settings, address="x@example.org", kind="hard", source="dsn",
                      key="2") == (True, "hard_bounce")
        assert record(s, settings, address="y@example.org", kind="soft", source="dsn", key="3",
                      now=old) == (True, None)
        assert record(s, settings, address="y@example.org", kind="soft", source="dsn",
                      key="4") == (True, None)
        assert record(s, settings, address="y@example.org", kind="soft", source="dsn",
                      key="5") == (True, "soft_bounce")


@pytest.mark.sqlite_only
def test_cli_bounces_process_mbox(db, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[database]\nurl = "{db.url}"\n[web]\nsecret_file = "{tmp_path / "s"}"\n')
    box = mailbox.mbox(tmp_path / "bounces.mbox", create=True)
    box.add(dsn("ada@example.org"))
    box.add(AUTOREPLY)
    box.flush()
    runner = CliRunner()
    out = runner.invoke(main,
                        ["--config", str(cfg), "bounces", "process", "--mbox", str(tmp_path / "bounces.mbox"),
                               "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == {"messages": 2, "not_reports": 1, "hard": 1, "soft": 0, "complaints": 0,
                                      "already": 0, "not_theirs": 0, "suppressed": ["ada@example.org"]}
    text = runner.invoke(main,
                         ["--config", str(cfg), "bounces", "process", "--mbox",
                          str(tmp_path / "bounces.mbox")])
    assert text.output.strip() == ("read 2 messages: 0 hard, 0 soft, 0 complaints, 1 already recorded, "
                                   "1 not bounce reports; suppressed 0 addresses")
    assert runner.invoke(main, ["--config", str(cfg), "bounces", "process"]).exit_code == 2
    notmaildir = runner.invoke(main, ["--config", str(cfg), "bounces", "process", "--maildir", str(tmp_path)])
    assert notmaildir.exit_code == 1 and "not a Maildir" in notmaildir.output


@pytest.mark.sqlite_only
@pytest.mark.parametrize(("status", "counted"), [
    ("5.1.1", True), ("5.2.1", True), ("5.2.2", True), ("4.4.7", True), ("5.4.4", True), ("5.0.0", True),
    ("5.7.1", False), ("5.7.26", False), ("5.3.4", False), ("5.2.3", False), ("5.6.0", False),
    ("5.1.7", False), ("5.5.0", False),
])
def test_a_report_about_the_message_or_the_sender_is_nobodys_bounce(db, settings_for, tmp_path, status,
                                                                    counted):
    """A DSN saying our message was refused for policy (5.7.1: our reputation, spam, DMARC), its size
    or content, or the sender is not about the recipient's address: it does not count against them."""
    settings = settings_for(db.url)
    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    box.add(dsn("ada@example.org", status, diagnostic=f"smtp; 550 {status} refused"))
    report = process_mailbox(db, settings, maildir=tmp_path / "bounces")
    assert report.not_theirs == (0 if counted else 1)
    assert bool(all_rows(db, Suppression)) == (counted and status[0] == "5" and status != "5.2.2")

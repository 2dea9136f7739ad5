"""Identities are never reused: a Message-ID and an outbox file name belong to one delivery for good,
even when the database hands a deleted delivery's id to a new one (SQLite does after `subscribers
remove`); and a bounce or a complaint touches only the address it names."""

from __future__ import annotations

import mailbox

from digest.delivery.bounces import Bounce, process_mailbox
from digest.delivery.sender import send
from digest.store.models import Delivery, Subscriber, Suppression, Topic
from digest.subscriptions import subscribers
from tests.factories import BASE, FROM, add_papers, all_rows, plan_editions
from tests.test_bounces import arf, dsn

ADA, GRACE, EVE = "ada@example.org", "grace@example.org", "eve@example.org"


def outbox_settings(settings_for, db, tmp_path):
    return settings_for(db.url, web={"base_url": BASE},
                        mail={"transport": "outbox", "outbox_dir": str(tmp_path / "outbox"),
                              "from_address": FROM})


def subscribe(db, email: str) -> None:
    with db.session() as s:
        s.add(Subscriber(email=email, name=None, status="active", topics=[Topic(phrase="diffusion models")]))


def test_a_removed_subscribers_late_bounce_does_not_suppress_the_next_one(db, settings_for, tmp_path):
    settings = outbox_settings(settings_for, db, tmp_path)
    pids = add_papers(db, 2)
    subscribe(db, ADA)
    ada_id = plan_editions(db, settings, pids)[ADA]
    assert send(db, settings).sent == 1
    first = sorted(p.name for p in (tmp_path / "outbox").glob("*.eml"))

    subscribers.remove(db, ADA)  # her deliveries go with her; SQLite may give the next one her row id
    subscribe(db, GRACE)
    grace_id = plan_editions(db, settings, pids)[GRACE]
    assert send(db, settings).sent == 1
    assert grace_id != ada_id
    files = sorted(p.name for p in (tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 2 and set(first) < set(files)  # Ada's file is still there, as it was written
    assert ADA in (tmp_path / "outbox" / first[0]).read_text()

    # Ada's mailbox bounces her message, late: that is about Ada, never about Grace
    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    box.add(dsn(ADA, message_id=ada_id))
    process_mailbox(db, settings, maildir=tmp_path / "bounces")
    assert [s.email for s in all_rows(db, Suppression)] == [ADA]
    assert [b.email for b in all_rows(db, Bounce)] == [ADA]
    with db.session() as s:
        assert s.query(Delivery).filter_by(email=GRACE).one().status == "sent"


def test_a_report_quoting_our_message_books_only_the_address_it_names(db, settings_for, tmp_path):
    """A DSN or a complaint that quotes Grace's Message-ID but names someone else (a forwarding
    address, a report gone astray) is booked against the address it names, not against Grace."""
    settings = outbox_settings(settings_for, db, tmp_path)
    pids = add_papers(db, 2)
    subscribe(db, GRACE)
    grace_id = plan_editions(db, settings, pids)[GRACE]
    send(db, settings)
    box = mailbox.Maildir(tmp_path / "bounces", create=True)
    box.add(dsn(EVE, message_id=grace_id))
    box.add(arf(EVE, message_id=grace_id, report_id="<arf-eve@fbl.example.net>"))
    report = process_mailbox(db, settings, maildir=tmp_path / "bounces")
    assert report.suppressed == [EVE]
    assert {(b.email, b.delivery_id) for b in all_rows(db, Bounce)} == {(EVE, None)}
    assert [s.email for s in all_rows(db, Suppression)] == [EVE]

    # a complaint that names nobody is about whoever the quoted message went to
    box.add(arf("", message_id=grace_id, report_id="<arf-anon@fbl.example.net>").replace(b"To: \n", b""))
    again = process_mailbox(db, settings, maildir=tmp_path / "bounces")
    assert again.suppressed == [GRACE]

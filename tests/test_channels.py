"""The channel seam: a channel registered under a new name carries its subscribers' editions, and the
send loop turns each outcome of the closed set into the ledger state it means, whatever the channel.

A made-up channel ("pigeon") is one class and one registry entry, as a new webhook kind would be; it
answers per recipient as a test tells it. Real SQLite and PostgreSQL, the real send loop.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from digest.delivery import channels
from digest.delivery.channel import (
    Channel,
    ChannelFailed,
    Fault,
    Outgoing,
    RecipientFailed,
    Retry,
    Sent,
    Unaddressable,
)
from digest.delivery.sender import send
from digest.records import DeliveryStatus
from digest.render import Rendered
from digest.store.models import Bounce, Delivery, Suppression
from digest.store.models import Subscriber as SubscriberRow
from tests.factories import add_papers, add_subscribers, addr, all_rows, plan_editions

S = DeliveryStatus
LATER = datetime(2031, 1, 1, tzinfo=UTC)


class Pigeon(Channel):
    """Carries an edition's subject to its recipient; what each recipient's send comes to is `ANSWERS`."""

    name = "pigeon"
    ANSWERS: dict[str, object] = {}
    carried: list[str] = []

    def outgoing(self, sub, edition, papers, now, sealed=None) -> Outgoing:
        if edition.email == addr(5):
            raise Unaddressable("no loft at this address")
        rendered = Rendered(subject=f"{len(edition.picks)} papers", html="", text="",
                            shown=len(edition.picks))
        return Outgoing(edition.id, sub.id, edition.email, rendered, rendered.subject.encode(),
                        edition.attempts,
                        self.name, message_id=edition.message_id)

    def send(self, item: Outgoing):
        Pigeon.carried.append(item.recipient)
        return Pigeon.ANSWERS.get(item.recipient, Sent())


@pytest.fixture
def pigeons(db, settings_for, tmp_path, monkeypatch):
    monkeypatch.setitem(channels.REGISTRY, "pigeon", Pigeon)
    monkeypatch.setattr(Pigeon, "carried", [])
    settings = settings_for(db.url, mail={"transport": "outbox", "outbox_dir": str(tmp_path / "outbox"),
                                          "max_attempts": 3})
    add_subscribers(db, 6)
    with db.session() as s:
        s.execute(update(SubscriberRow).values(channel="pigeon"))
    plan_editions(db, settings, add_papers(db, 2))
    return settings


def states(db) -> dict[str, tuple]:
    return {d.email: (d.status, d.attempts) for d in all_rows(db, Delivery)}


def test_each_outcome_becomes_its_ledger_state(db, pigeons, monkeypatch):
    monkeypatch.setattr(Pigeon, "ANSWERS", {
        addr(1): Retry("421 try later", LATER, Fault("soft", "4.2.2")),
        addr(2): RecipientFailed("550 5.1.1 no such user", Fault("hard", "5.1.1")),
        addr(3): RecipientFailed("HTTP 404 Not Found"),  # for good, but nothing to suppress
    })
    report = send(db, pigeons)
    # the unaddressable one is the admin's to fix: said in the report (and `digest send` exits non-zero)
    assert (report.sent, report.retried, report.failed) == (2, 1, 3)
    assert report.errors == ["1 deliveries could not be made, the first: address error: "
                             "no loft at this address"]
    # the unaddressable: none
    assert report.by_transport == {"pigeon": {"sent": 2, "retried": 1, "failed": 2}}
    assert states(db) == {addr(0): (S.SENT, 1), addr(1): (S.RETRY, 1), addr(2): (S.FAILED, 1),
                          addr(3): (S.FAILED, 1), addr(4): (S.SENT, 1), addr(5): (S.FAILED, 0)}
    rows = {d.email: d for d in all_rows(db, Delivery)}
    assert rows[addr(1)].next_attempt_at == LATER and rows[addr(1)].last_error == "421 try later"
    assert rows[addr(5)].last_error == "address error: no loft at this address"
    assert [(b.email, b.kind, b.status) for b in all_rows(db, Bounce)] == [(addr(2), "hard", "5.1.1")]
    assert [s.email for s in all_rows(db, Suppression)] == [addr(2)]
    assert addr(5) not in Pigeon.carried


def test_a_retry_fails_once_the_tries_are_used_up_and_counts_only_if_its_fault_says_so(db, pigeons,
                                                                                        monkeypatch):
    monkeypatch.setattr(Pigeon, "ANSWERS", {addr(1): Retry("451 later", LATER, Fault("soft", "4.2.2")),
                                            addr(2): Retry("HTTP 503", LATER)})
    for attempt in range(3):
        send(db, pigeons, now=LATER + timedelta(days=attempt))
    assert states(db)[addr(1)] == (S.FAILED, 3) and states(db)[addr(2)] == (S.FAILED, 3)
    assert [(b.email, b.kind) for b in all_rows(db, Bounce)] == [(addr(1), "soft")]


def test_a_channel_that_fails_itself_stops_the_run_and_gives_back_what_it_did_not_try(db, pigeons,
                                                                                      monkeypatch):
    monkeypatch.setattr(Pigeon, "ANSWERS", {addr(2): ChannelFailed("the loft is on fire")})
    report = send(db, pigeons)
    assert report.sent == 2 and "the loft is on fire" in report.errors  # beside the unaddressable one's line
    after = states(db)
    assert after[addr(0)] == after[addr(1)] == (S.SENT, 1)
    # the one it failed on and every untried one: back in the ledger, unspent, due at once
    assert {after[addr(i)] for i in (2, 3, 4)} == {(S.PLANNED, 0)}
    assert not all_rows(db, Bounce)
    monkeypatch.setattr(Pigeon, "ANSWERS", {})
    assert send(db, pigeons).sent == 3  # the next run sends the rest, once


def test_the_registry_names_each_channel_once_and_the_webhook_kinds_are_its_sealed_ones():
    assert set(channels.REGISTRY) == {"smtp", "outbox", "slack", "discord", "generic"}
    assert channels.sealed_kinds() == ("slack", "discord", "generic")
    assert not channels.is_sealed("email") and channels.is_sealed("slack")

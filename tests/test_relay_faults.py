"""Who is at fault when the relay refuses: `digest send` against a relay that answers what each test
chooses, stage by stage (tests/faultsmtp.py).

Only a reply about this recipient counts against them; a refusal by the relay (the session, the
sender, relay-wide limits, policy) gives the delivery back unspent, and when it repeats the run stops
(the circuit breaker) with the relay's own reply and a non-zero exit. A message too big for the relay
fails alone, and the rest go out.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from digest.cli import main
from digest.delivery import ledger
from digest.delivery.bounces import Bounce
from digest.delivery.breaker import LIMIT
from digest.delivery.sender import send
from digest.mail.enhanced_status import END, MAIL, RCPT, judge
from digest.records import Edition, Pick
from digest.store.db import Database
from digest.store.models import Delivery, Subscriber, Suppression
from tests.factories import BASE, FROM, TOPICS, add_papers, add_subscribers, addr, all_rows, mail_settings
from tests.faultsmtp import CRASH, DROP, STALL, FaultRelay, Script, Turn

pytestmark = pytest.mark.sqlite_only  # the database plays no part in who is at fault


def send_cli(db: Database, tmp_path, relay: FaultRelay, *args: str, timeout: float = 1.0,
             workers: int | None = None):
    """`digest send` through the CLI, sending to `relay`."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[database]\nurl = "{db.url}"\n[web]\nbase_url = "{BASE}"\nsecret_file = '
                   f'"{tmp_path / "s"}"\n'
                   f'[digest]\nranker = "lexical"\n'
                   f'[mail]\ntransport = "smtp"\nfrom_address = "{FROM}"\nretry_backoff = 0\n'
                   f'[mail.smtp]\nhost = "{relay.host}"\nport = {relay.port}\ntimeout = {timeout}\n')
    extra = ["--workers", str(workers)] if workers else []
    return CliRunner().invoke(main, ["--config", str(cfg), "send", *extra, *args])


def world(db: Database, n: int) -> None:
    """n subscribers, each with an edition due (a paper for every topic)."""
    add_papers(db, 5)
    add_subscribers(db, n)


def states(db: Database) -> dict[str, tuple[str, int]]:
    with db.session() as s:
        return {e: (st, a) for e, st, a in s.execute(select(Delivery.email, Delivery.status,
                                                            Delivery.attempts))}


def nobody_booked(db: Database) -> None:
    assert all_rows(db, Bounce) == [] and all_rows(db, Suppression) == []


def only(recipient: str, reply: str, otherwise: str):
    return lambda turn: reply if turn.recipient == recipient else otherwise


# ------------------------------------------------------------------------------ the rule itself

# (stage, code, reply) -> (party, bounce kind): one row per member of each class
VERDICTS = [
    (RCPT, 550, "550 5.1.1 <a@x>: Recipient address rejected: User unknown", "recipient", "hard"),
    (RCPT, 550, "550 5.1.2 bad destination system", "recipient", "hard"),
    (RCPT, 550, "550 5.1.10 null MX", "recipient", "hard"),
    (RCPT, 550, "550 5.2.1 mailbox disabled", "recipient", "hard"),
    (RCPT, 552, "552 5.2.2 mailbox full", "recipient", "soft"),
    (RCPT, 452, "452 4.2.2 mailbox full", "recipient", "soft"),
    (RCPT, 450, "450 4.1.1 recipient not verified yet", "recipient", "soft"),
    (END, 550, "550 5.1.1 user unknown", "recipient", "hard"),
    (RCPT, 550, "No such user here", "recipient", "hard"),
    (RCPT, 554, "554 5.7.1 <a@x>: Relay access denied", "relay", None),
    (RCPT, 550, "550 5.7.1 relaying denied", "relay", None),
    (RCPT, 452, "452 4.3.1 Insufficient system storage", "relay", None),
    (RCPT, 452, "Too many recipients", "relay", None),
    (RCPT, 452, "452 4.5.3 Too many recipients", "relay", None),
    (RCPT, 421, "421 4.3.2 shutting down", "relay", None),
    (RCPT, 451, "451 4.7.1 greylisted, try again later", "relay", None),
    (RCPT, 530, "530 5.7.0 Authentication required", "relay", None),
    (RCPT, 550, "550 5.1.7 bad sender's mailbox syntax", "relay", None),
    (RCPT, 550, "550 5.1.8 bad sender's system address", "relay", None),
    (RCPT, 554, "554 5.4.6 routing loop", "relay", None),
    (RCPT, 550, "550 5.0.0 no further information", "relay", None),
    (MAIL, 550, "550 5.1.1 sender unknown", "relay", None),
    (MAIL, 553, "553 5.7.1 sender not allowed", "relay", None),
    (MAIL, 552, "552 5.3.4 Message size exceeds fixed limit", "message", None),
    (MAIL, 552, "Message size exceeds fixed maximum", "message", None),
    (END, 552, "552 5.3.4 Message too big", "message", None),
    (END, 552, "552 5.2.3 message length exceeds administrative limit", "message", None),
    (END, 554, "554 5.6.0 content refused", "message", None),
    (END, 554, "554 5.7.1 spam detected", "relay", None),
    (END, 451, "451 4.3.0 local error", "relay", None),
    (END, 554, "Transaction failed", "relay", None),
    ("DATA", 554, "554 5.5.1 no valid recipients", "relay", None),
    ("EHLO", 550, "550 5.1.1 ???", "relay", None),
]


@pytest.mark.parametrize(("stage", "code", "reply", "party", "bounce"), VERDICTS,
                         ids=[f"{v[0]}-{v[2][:30]}" for v in VERDICTS])
def test_a_reply_is_judged_by_its_stage_and_enhanced_code(stage, code, reply, party, bounce):
    verdict = judge(stage, code, reply)
    assert (verdict.party, verdict.bounce) == (party, bounce)
    assert verdict.temporary == (400 <= code < 500)


# --------------------------------------------------------------------------- through `digest send`

RELAY_REFUSALS = {
    "relay access denied at RCPT": Script(rcpt="554 5.7.1 <x>: Relay access denied"),
    "relay-wide 452 at RCPT": Script(rcpt="452 4.3.1 Insufficient system storage"),
    "bare 452 at RCPT": Script(rcpt="452 Too many recipients"),
    "auth wanted at RCPT": Script(rcpt="530 5.7.0 Authentication required"),
    "4xx to the sender": Script(mail="451 4.3.0 Temporary local problem"),
    "policy after the data": Script(end="554 5.7.1 Message rejected as spam"),
    "local error after the data": Script(end="451 4.3.0 Error: queue file write error"),
    "421 at RCPT every time": Script(rcpt="421 4.3.2 Service not available"),
    "DATA refused": Script(data="554 5.5.1 Error: no valid recipients"),
}


@pytest.mark.parametrize("script", RELAY_REFUSALS.values(), ids=RELAY_REFUSALS)
def test_a_relay_refusal_books_nothing_stops_the_run_and_gives_every_delivery_back(db, tmp_path, script):
    world(db, 6)
    with FaultRelay(script) as relay:
        out = send_cli(db, tmp_path, relay)
    assert out.exit_code != 0, out.output
    nobody_booked(db)
    assert set(states(db).values()) == {("planned", 0)}  # given back unspent
    refused = [text for stage, text in relay.replies if stage in ("MAIL", "RCPT", "DATA", "end")
               and not text.startswith(("250", "354"))]
    assert len(refused) <= LIMIT * 2  # the breaker stopped it (421 is tried once more on a new connection)
    said = refused[-1]
    errors = [line for line in out.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and said in errors[0], out.output
    assert relay.messages == []


def test_a_refusal_short_of_the_breaker_is_given_back_and_reported(db, tmp_path):
    """Two subscribers, both refused: fewer than the breaker's limit, yet nobody is booked, both are
    given back, and the admin sees the relay's reply and a non-zero exit."""
    world(db, 2)
    with FaultRelay(Script(rcpt="554 5.7.1 Relay access denied")) as relay:
        out = send_cli(db, tmp_path, relay)
    assert out.exit_code != 0
    nobody_booked(db)
    assert set(states(db).values()) == {("planned", 0)}
    assert "554 5.7.1 Relay access denied" in out.output and "given back 2" in out.output

    with FaultRelay() as relay:  # the admin fixed the relay: everyone gets their digest, once
        out = send_cli(db, tmp_path, relay)
    assert out.exit_code == 0, out.output
    assert set(states(db).values()) == {("sent", 1)} and len(relay.messages) == 2


RECIPIENT_REPLIES = {
    "unknown user": ("550 5.1.1 <{a}>: User unknown", "failed", "hard", True),
    "mailbox disabled": ("550 5.2.1 <{a}>: mailbox disabled", "failed", "hard", True),
    "bad domain": ("550 5.1.2 bad destination system", "failed", "hard", True),
    "mailbox full": ("552 5.2.2 <{a}>: mailbox full", "failed", "soft", False),
    "mailbox full for now": ("452 4.2.2 <{a}>: over quota", "retry", None, False),
    "bare 550": ("550 no such user", "failed", "hard", True),
}


@pytest.mark.parametrize(("reply", "status", "kind", "suppressed"), RECIPIENT_REPLIES.values(),
                         ids=RECIPIENT_REPLIES)
def test_a_reply_about_the_recipient_counts_against_them_alone(db, tmp_path, reply, status, kind, suppressed):
    world(db, 4)
    gone = addr(1)
    with FaultRelay(Script(rcpt=only(gone, reply.format(a=gone), "250 2.1.5 Ok"))) as relay:
        out = send_cli(db, tmp_path, relay)
    got = states(db)
    assert got.pop(gone) == (status, 1)
    assert set(got.values()) == {("sent", 1)}
    bounces = [(b.email, b.kind) for b in all_rows(db, Bounce)]
    assert bounces == ([(gone, kind)] if kind else [])
    assert [s.email for s in all_rows(db, Suppression)] == ([gone] if suppressed else [])
    assert out.exit_code == 0, out.output  # a bounce is the list's business, not the admin's
    assert relay.taken(gone) == 0 and len(relay.messages) == 3


def test_the_same_refusal_from_several_sending_processes_stops_them_all(db, tmp_path):
    world(db, 8)
    with FaultRelay(Script(rcpt="554 5.7.1 Relay access denied")) as relay:
        out = send_cli(db, tmp_path, relay, workers=2)
    assert out.exit_code != 0 and "554 5.7.1 Relay access denied" in out.output
    nobody_booked(db)
    assert set(states(db).values()) == {("planned", 0)}
    assert len([1 for stage, text in relay.replies if stage == "RCPT"]) <= 2 * LIMIT  # each its breaker


def test_a_relay_that_stalls_stops_the_run_after_a_few_timeouts(db, tmp_path):
    """Stalling after the data (the relay may hold the message) or before it: each stall costs one
    timeout, the breaker stops the run after a few, nobody is booked, nothing stays `sending`."""
    world(db, 10)
    script = Script(rcpt=lambda t: STALL if t.transaction % 2 else "250 2.1.5 Ok", end=STALL,
                    stall_seconds=5)
    with FaultRelay(script) as relay:
        out = send_cli(db, tmp_path, relay, timeout=0.5)
    assert out.exit_code != 0 and "timed out" in out.output
    nobody_booked(db)
    got = states(db)
    assert "sending" not in {st for st, _ in got.values()}
    assert sum(1 for st, _ in got.values() if st == "planned") >= 10 - LIMIT
    assert relay.transactions <= LIMIT


def test_a_crash_after_the_data_sends_that_message_at_most_twice(db, tmp_path):
    world(db, 3)
    crashed = []

    def end(turn: Turn) -> str:
        if turn.recipient == addr(1) and not crashed:
            crashed.append(turn)
            return CRASH
        return "250 2.0.0 Ok"

    with FaultRelay(Script(end=end)) as relay:
        out = send_cli(db, tmp_path, relay)
    assert out.exit_code == 0, out.output
    assert set(states(db).values()) == {("sent", 1)}
    assert relay.taken(addr(1)) == 2 and relay.taken(addr(0)) == relay.taken(addr(2)) == 1
    nobody_booked(db)


def test_a_relay_that_drops_every_connection_is_a_channel_failure(db, tmp_path):
    world(db, 4)
    with FaultRelay(Script(mail=DROP)) as relay:
        out = send_cli(db, tmp_path, relay)
    assert out.exit_code != 0
    nobody_booked(db)
    assert set(states(db).values()) == {("planned", 0)}


# ------------------------------------------------------------------- item 7: a message too big

def planned_sizes(db: Database, big: str) -> None:
    """This period's editions: `big` gets twenty papers, everyone else one (so their digest is smaller)."""
    pids = add_papers(db, 20)
    now = datetime.now(UTC)
    with db.session() as s:
        subs = s.execute(select(Subscriber.id, Subscriber.email).order_by(Subscriber.id)).all()
    editions = [Edition(subscriber_id=sid, email=email, period="2026-11-22", window_start=None,
                        window_end=now, planned_at=now,
                        picks=tuple(Pick(p, 1 / i, topic=TOPICS[0], why="Matches")
                                    for i, p in enumerate(pids[:20 if email == big else 1], 1)))
                for sid, email in subs]
    ledger.write(db, editions, "example.org")


@pytest.mark.parametrize("how", ["advertised SIZE", "552 5.3.4 after the data"])
def test_one_message_too_big_fails_alone_and_the_rest_go_out(db, settings_for, how):
    add_subscribers(db, 5)
    big = addr(2)
    planned_sizes(db, big)
    if how == "advertised SIZE":
        script = Script(size=40_000)
    else:
        script = Script(end=lambda t: "552 5.3.4 Message too big" if t.recipient == big else "250 2.0.0 Ok")
    with FaultRelay(script) as relay:
        settings = mail_settings(settings_for, db, relay)
        report = send(db, settings)
    assert report.errors and "5.3.4" in report.errors[0]  # the admin must see to it: non-zero exit
    got = states(db)
    assert got.pop(big) == ("failed", 1)  # for good: it does not block the queue on every run
    assert set(got.values()) == {("sent", 1)} and len(relay.messages) == 4
    assert all(len(m.data) < 40_000 for m in relay.messages)
    nobody_booked(db)
    with db.session() as s:
        error = s.scalar(select(Delivery.last_error).where(Delivery.email == big))
    assert "5.3.4" in error

"""A property of `digest send` against a relay that misbehaves at random (tests/faultsmtp.py): each
stage answers from a list of replies (acceptances, refusals about the recipient, the message or the
relay, stalls, dropped connections, crashes after taking a message), drawn by hypothesis.

Whatever the relay does, after each `digest send`:
- no address is suppressed unless a reply named that recipient (a refusal about their address or
  mailbox, at RCPT or at the end of data);
- no delivery is left `sending`;
- no message arrives more than once per crash (the relay took it and then dropped the connection, or
  never answered);
- the exit code is non-zero whenever a delivery failed for a reason the admin must act on (failed
  without a bounce of the recipient's) or was given back because the relay refused it.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from digest.cli import main
from digest.delivery.bounces import Bounce
from digest.store.db import Database
from digest.store.models import Delivery, Suppression
from tests.factories import BASE, FROM, add_papers, add_subscribers
from tests.faultsmtp import CRASH, DROP, HANG, STALL, FaultRelay, Script, Turn

OK = {"MAIL": "250 2.1.0 Ok", "RCPT": "250 2.1.5 Ok", "DATA": "354 go ahead", "end": "250 2.0.0 queued"}
# replies that name the recipient: the only ones that may count against them
ABOUT_RECIPIENT = {"550 5.1.1 <{a}>: Recipient address rejected: User unknown", "550 5.2.1 mailbox disabled",
                   "552 5.2.2 mailbox full", "452 4.2.2 over quota", "450 4.2.0 mailbox busy",
                   "550 no such user"}
OTHERS = {
    "greeting": ["554 5.3.2 no SMTP service here", STALL],
    "MAIL": ["451 4.3.0 temporary local problem", "553 5.7.1 sender not allowed", "421 4.3.2 closing",
             "452 4.3.1 insufficient storage", DROP, STALL],
    "RCPT": ["554 5.7.1 Relay access denied", "452 4.3.1 Insufficient system storage",
             "452 Too many recipients", "530 5.7.0 Authentication required", "550 5.7.1 relaying denied",
             "421 4.3.2 closing",
             "451 4.7.1 greylisted", DROP, STALL],
    "DATA": ["554 5.5.1 no valid recipients", "451 4.3.0 try again", DROP, STALL],
    "end": ["552 5.3.4 Message too big", "554 5.7.1 rejected as spam", "451 4.3.0 queue file write error",
            "554 5.6.0 content refused", CRASH, HANG, DROP, STALL],
}
RECIPIENT_STAGES = ("RCPT", "end")


def answers(stage: str) -> st.SearchStrategy[list[str]]:
    """A short cycle of answers for one stage, mostly acceptances."""
    pool = OTHERS[stage] + (sorted(ABOUT_RECIPIENT) if stage in RECIPIENT_STAGES else [])
    return st.lists(st.one_of(st.just(OK.get(stage, "220 ready")), st.sampled_from(pool)), min_size=1,
                    max_size=5)


def cycle(replies: list[str]):
    return lambda turn: replies[turn.transaction % len(replies)].replace("{a}", turn.recipient or "")


@st.composite
def scripts(draw) -> Script:
    greeting = draw(st.sampled_from(["220 faultsmtp ready"] * 8 + OTHERS["greeting"]))
    return Script(greeting=greeting, mail=cycle(draw(answers("MAIL"))), rcpt=cycle(draw(answers("RCPT"))),
                  data=cycle(draw(answers("DATA"))), end=cycle(draw(answers("end"))),
                  size=draw(st.sampled_from([None, None, None, 30_000])), stall_seconds=3)


def named(turn: Turn, text: str) -> bool:
    return (turn.stage in RECIPIENT_STAGES and turn.recipient is not None
            and text.replace(turn.recipient, "{a}") in ABOUT_RECIPIENT)


@settings(max_examples=int(os.environ.get("RELAY_EXAMPLES", 10)), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(script=scripts())
def test_whatever_the_relay_does_nobody_is_wrongly_cut_off_or_doubled(script):
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'digest.db'}")
        db.init()
        add_papers(db, 5)
        add_subscribers(db, 5)
        with FaultRelay(script) as relay:
            cfg = Path(tmp) / "config.toml"
            cfg.write_text(f'[database]\nurl = "{db.url}"\n[web]\nbase_url = "{BASE}"\nsecret_file = '
                           f'"{Path(tmp) / "s"}"\n[digest]\nranker = "lexical"\n'
                           f'[mail]\ntransport = "smtp"\nfrom_address = "{FROM}"\nretry_backoff = 0\n'
                           f'[mail.smtp]\nhost = "{relay.host}"\nport = {relay.port}\ntimeout = 0.3\n')
            failed: set[str] = set()
            for _ in range(2):  # and once more: what was given back or retried goes again
                out = CliRunner().invoke(main, ["--config", str(cfg), "send"])
                assert out.exception is None or isinstance(out.exception, SystemExit), out.output
                failed |= check(db, relay, out.exit_code, out.output, failed)
        db.dispose()


def check(db: Database, relay: FaultRelay, exit_code: int, output: str, failed_before: set[str]) -> set[str]:
    """The properties after one `digest send`; returns the addresses whose delivery has failed."""
    with db.session() as s:
        rows = s.execute(select(Delivery.email, Delivery.status, Delivery.message_id)).all()
        suppressed = set(s.scalars(select(Suppression.email)))
        bounced = set(s.scalars(select(Bounce.email)))
    named_ones = {t.recipient for t, text in relay.turns if named(t, text)}
    assert suppressed <= named_ones, (suppressed, relay.turns)
    assert bounced <= named_ones
    assert "sending" not in {status for _, status, _ in rows}
    copies = Counter(m.message_id for m in relay.messages)
    for mid, n in copies.items():
        assert n <= 1 + relay.lost_replies[mid], (mid, n, relay.lost_replies)
    for email, status, _ in rows:
        if status == "failed" and email not in bounced | failed_before:  # not the recipient's doing
            assert exit_code != 0, output  # the admin's business
        if status in ("planned", "retry") and email not in named_ones:
            assert exit_code != 0, output  # given back or deferred because of the relay: say so
    return {email for email, status, _ in rows if status == "failed"}

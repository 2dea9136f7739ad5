"""The admin's view (issue 23, items 11 and 12): exit codes that tell a broken cron job from a healthy
one, one line for a wrong name or a wrong directory, and the recovery commands: suppressions list and
lift, deliveries retry and release, and who holds leases in `digest status`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from click.testing import CliRunner
from sqlalchemy import select

from digest.cli import main
from digest.delivery import bounces, ledger
from digest.mail.sink import Faults, SmtpSink
from digest.records import DeliveryStatus as S
from digest.records import Edition
from digest.store.models import Delivery, Subscriber
from tests.factories import BASE, FROM, add_papers, add_subscribers, addr, plan_editions

# The tests that plan "this period" run on a clock pinned at noon UTC (ticking), so that the period cannot
# change under them: with the real clock, a suite that ran past midnight UTC found the editions it had
# planned for "today" in a past period.
NOON = datetime(2026, 12, 7, 12, tzinfo=UTC)
TODAY = NOON.strftime("%Y-%m-%d")  # the current period of a daily subscriber in UTC, at NOON


@pytest.fixture
def at_noon():
    with time_machine.travel(NOON, tick=True):
        yield


def config(tmp_path: Path, db_url: str, smtp: SmtpSink | None = None) -> Path:
    cfg = tmp_path / "config.toml"
    mail = (f'[mail]\ntransport = "smtp"\nfrom_address = "{FROM}"\n'
            f'unsubscribe_mailto = "unsubscribe@example.org"\n'
            f'[mail.smtp]\nhost = "{smtp.host}"\nport = {smtp.port}\n') if smtp else ""
    cfg.write_text(f'[database]\nurl = "{db_url}"\n[web]\nbase_url = "{BASE}"\n'
                   f'[digest]\nranker = "lexical"\n{mail}')
    return cfg


def cli(cfg: Path):
    def run(*args: str, **kw):
        r = CliRunner().invoke(main, ["--config", str(cfg), *args], **kw)
        assert "Traceback" not in r.output, r.output
        return r
    return run


# ---------------------------------------------------------------------------- item 11: exit codes


@pytest.mark.sqlite_only
@pytest.mark.parametrize("args", [
    ["send"], ["run"], ["status"], ["due"], ["subscribers", "list"],
    ["subscribers", "remove", "a@b.org", "--yes"],
    ["suppressions", "list"], ["deliveries", "retry"], ["deliveries", "release"], ["sources"],
])
def test_a_command_on_an_existing_list_in_the_wrong_directory_says_so_and_creates_nothing(tmp_path, args):
    missing = tmp_path / "elsewhere" / "digest.db"
    missing.parent.mkdir()
    r = cli(config(tmp_path, f"sqlite:///{missing}"))(*args)
    assert r.exit_code == 1, r.output
    assert "no database at" in r.output and "digest init" in r.output and len(r.output.splitlines()) == 1
    assert list(missing.parent.iterdir()) == []


@pytest.mark.sqlite_only
def test_adding_a_subscriber_still_starts_a_list(tmp_path):
    path = tmp_path / "digest.db"
    r = cli(config(tmp_path, f"sqlite:///{path}"))("subscribers", "add", "ada@example.org")
    assert r.exit_code == 0 and r.output.startswith("added ada@example.org") and path.exists()


@pytest.mark.parametrize("args", [["send"], ["send", "--dry-run"], ["due"], ["preview"],
                                  ["deliveries", "retry"]])
def test_an_unknown_subscriber_is_one_line_and_a_non_zero_exit(db, tmp_path, args):
    add_subscribers(db, 1)
    r = cli(config(tmp_path, db.url))(*args, "--subscriber", "nobody@example.org")
    assert r.exit_code == 1 and r.output == "Error: no subscriber nobody@example.org\n", r.output


def test_send_says_where_the_mail_went_and_fails_when_every_delivery_failed(db, tmp_path):
    add_papers(db, 5)
    add_subscribers(db, 3)
    refused = {addr(i) for i in range(3)}
    with SmtpSink(faults=Faults(reject=refused)) as smtp:
        r = cli(config(tmp_path, db.url, smtp))("send")
    assert r.exit_code == 1, r.output
    assert "sent 0, retried 0, failed 3" in r.output
    assert f"mail went to the SMTP relay {smtp.host}:{smtp.port}" in r.output
    assert "error: every delivery tried failed (3)" in r.output


def test_send_names_the_outbox_it_wrote_to_and_exits_0(db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    add_papers(db, 5)
    add_subscribers(db, 2)
    r = cli(config(tmp_path, db.url))("send")
    assert r.exit_code == 0 and "sent 2," in r.output, r.output
    assert f"mail went to the outbox {tmp_path / 'outbox'}" in r.output


@pytest.mark.sqlite_only
def test_output_piped_into_head_ends_quietly(db, tmp_path):
    add_subscribers(db, 3000)
    cfg = config(tmp_path, db.url)
    err = tmp_path / "err.txt"
    done = subprocess.run(f"{sys.executable} -m digest.cli --config {cfg} subscribers list 2>{err} | head -1",
                          shell=True, capture_output=True, text=True, timeout=120, env=os.environ)
    assert done.stdout.startswith(addr(0))
    assert err.read_text() == ""


# -------------------------------------------------------------------------- item 12: suppressions


def _bounced(db, settings_for, email: str) -> str:
    """A hard bounce while sending suppresses `email` (the default policy: one hard bounce); returns
    the Message-ID of the delivery it was about."""
    settings = settings_for(db.url)
    ids = plan_editions(db, settings, add_papers(db, 1), period=TODAY)
    with db.session() as s:
        did = s.scalar(select(Delivery.id).where(Delivery.email == email))
        bounces.record(s, settings, address=email, kind="hard", source="smtp", key=f"t|{did}", status="5.1.1",
                       detail="550 5.1.1 <user> User unknown", delivery_id=did)
    return ids[email]


@pytest.mark.usefixtures("at_noon")
def test_suppressions_are_listed_with_their_cause_and_lifted_by_the_admin(db, tmp_path, settings_for):
    add_subscribers(db, 2)
    message_id = _bounced(db, settings_for, addr(0))
    run = cli(config(tmp_path, db.url))
    listed = run("suppressions", "list")
    assert listed.exit_code == 0
    line = listed.output.splitlines()[0]
    assert line.startswith(addr(0)) and "hard_bounce" in line and "the relay's reply while sending" in line
    assert message_id in line and "550 5.1.1 <user> User unknown" in line
    assert listed.output.splitlines()[-1] == "1 suppressed address"

    rows = run("subscribers", "list").output.splitlines()
    assert "suppressed" in rows[0] and addr(0) in rows[0] and "active" in rows[1]
    assert "suppressed addresses: 1" in run("status").output

    # removed and added again: still suppressed, and it says so instead of "added"
    assert run("subscribers", "remove", addr(0), "--yes").exit_code == 0
    again = run("subscribers", "add", addr(0), "--topic", "graphs")
    assert again.exit_code == 0 and not again.output.startswith("added")
    assert f"{addr(0)} is suppressed (hard_bounce" in again.output
    assert f"digest suppressions lift {addr(0)}" in again.output

    lifted = run("suppressions", "lift", addr(0).upper())
    assert lifted.exit_code == 0 and lifted.output.startswith(f"lifted {addr(0)} (hard_bounce"), lifted.output
    assert run("suppressions", "list").output == "0 suppressed addresses\n"
    with db.session() as s:  # the bounce behind it no longer counts: the policy starts afresh
        assert bounces.policy_reason(s, settings_for(db.url), addr(0), datetime.now(UTC)) is None
    again = run("suppressions", "lift", addr(0))
    assert again.exit_code == 1 and again.output == f"Error: {addr(0)} is not suppressed\n"


def test_an_unsubscribe_is_not_the_admins_to_lift(db, tmp_path):
    from digest.store import subscribers as store

    add_subscribers(db, 1)
    with db.session() as s:
        store.suppress(s, addr(0), "unsubscribed", "one-click", datetime.now(UTC))
    r = cli(config(tmp_path, db.url))("suppressions", "lift", addr(0))
    assert r.exit_code == 1 and "unsubscribed: only their own new subscription" in r.output
    with db.session() as s:
        assert store.suppression(s, addr(0)) == "unsubscribed"


# ---------------------------------------------------------------------------- item 12: deliveries


def _outcome(db, email: str, status: S, **values) -> int:
    """Claim `email`'s delivery and record `status` for it, as a sender would."""
    with db.session() as s:
        did = s.scalar(select(Delivery.id).where(Delivery.email == email))
    with db.session() as s:
        s.execute(Delivery.__table__.update().where(Delivery.id == did)
                  .values(status=S.SENDING, worker_id="test:1:x"))
    assert ledger.finish(db, "test:1:x", [ledger.Outcome(did, status, attempts=1, **values)]) == [did]
    return did


@pytest.mark.usefixtures("at_noon")
def test_retry_makes_this_periods_failed_and_waiting_deliveries_due_and_send_sends_them(db, tmp_path,
                                                                                       settings_for):
    add_subscribers(db, 4)
    settings = settings_for(db.url)
    plan_editions(db, settings, add_papers(db, 3), period=TODAY)
    with db.session() as s:  # subscriber 3 had a failed edition in an earlier period: left alone
        sid = s.scalar(select(Subscriber.id).where(Subscriber.email == addr(3)))
    ledger.write(db, [Edition(
        subscriber_id=sid, email=addr(3), period="2020-01-01", window_start=None,
        window_end=datetime.now(UTC), planned_at=datetime.now(UTC) - timedelta(days=3))], "example.org")
    _outcome(db, addr(0), S.FAILED, error="421 4.3.2 relay busy")
    _outcome(db, addr(1), S.RETRY, error="451 later", next_attempt_at=datetime.now(UTC) + timedelta(hours=5))
    _outcome(db, addr(2), S.FAILED, error="421 4.3.2 relay busy")
    with db.session() as s:
        s.execute(Delivery.__table__.update().where(Delivery.period == "2020-01-01").values(status=S.FAILED))
        s.execute(Delivery.__table__.update().where(Delivery.email == addr(3), Delivery.period == TODAY)
                  .values(status=S.SENT))
    with SmtpSink() as smtp:
        run = cli(config(tmp_path, db.url, smtp))
        one = run("deliveries", "retry", "--subscriber", addr(2))
        assert one.output == "1 deliveries due now (1 failed, 0 waiting to retry); run `digest send`\n"
        rest = run("deliveries", "retry")
        assert rest.output == ("2 deliveries due now (1 failed, 1 waiting to retry); 1 of past periods left "
                               "alone; run `digest send`\n"), rest.output
        sent = run("send")
        assert sent.exit_code == 0 and "sent 3," in sent.output, sent.output
        assert sorted(m.recipients[0] for m in smtp.messages) == [addr(0), addr(1), addr(2)]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.usefixtures("at_noon")
def test_release_hands_back_what_a_dead_sender_held_and_refuses_a_live_one(db, tmp_path, settings_for):
    add_subscribers(db, 5)
    plan_editions(db, settings_for(db.url), add_papers(db, 2), period=TODAY)
    host = socket.gethostname()
    dead, live = f"{host}:{_dead_pid()}:dead01", f"{host}:{os.getpid()}:live01"
    assert ledger.claim(db, dead, datetime.now(UTC), 3) == [1, 2, 3]
    assert ledger.claim(db, live, datetime.now(UTC), 2) == [4, 5]
    run = cli(config(tmp_path, db.url))
    warned = run("send", "--subscriber", addr(0))  # held: nothing to send, and it says why
    assert f"warning: 3 deliveries are held by {dead}, whose process is gone" in warned.output
    status = run("status").output
    assert f"lease: 3 deliveries held by {dead} (its process is gone: `digest deliveries release`) until" \
        in status
    assert f"lease: 2 deliveries held by {live} (running) until" in status
    r = run("deliveries", "release")
    assert r.exit_code == 1
    assert f"released 3 deliveries held by {dead} (gone)" in r.output
    assert f"refused: 2 deliveries held by {live}, still running" in r.output
    with db.session() as s:
        got = dict(s.execute(select(Delivery.id, Delivery.status)).all())
    assert got == {1: "planned", 2: "planned", 3: "planned", 4: "sending", 5: "sending"}
    assert [x for x in run("status").output.splitlines() if x.startswith("lease:")] == [
        x for x in status.splitlines() if x.startswith("lease:") and live in x]

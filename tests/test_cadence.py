"""Cadence rules, end to end on SQLite and PostgreSQL, with a real SMTP server: a quiet day (fewer
papers above the bar than the subscriber's minimum) sends nothing, records why, and its papers roll
over to the next edition, never sent twice; best of the week picks from the whole week's papers."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import time_machine
from click.testing import CliRunner
from sqlalchemy import select

from digest.cli import main
from digest.planning.schedule import check
from digest.ranking import build_corpus, rank_with
from digest.records import LastEdition, Paper, Profile, Schedule
from digest.store.models import Delivery, DeliveryItem
from digest.store.models import Paper as PaperRow
from digest.subscriptions import subscriber_csv, subscribers
from digest.subscriptions.links import links_for
from digest.subscriptions.subscribers import SubscriberError
from digest.usecases import planning, sending
from digest.usecases.reads import StoreReads
from tests.factories import add_tagged, mail_settings

TOPIC = "graph neural networks"
DAY = timedelta(days=1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def ledger(db, email: str) -> dict[str, tuple[str, str | None, list[str]]]:
    """period -> (status, note, titles of its picks)."""
    out = {}
    with db.session() as s:
        for d in s.scalars(select(Delivery).where(Delivery.email == email).order_by(Delivery.id)):
            titles = s.scalars(select(PaperRow.title).join(DeliveryItem, DeliveryItem.paper_id == PaperRow.id)
                               .where(DeliveryItem.delivery_id == d.id, DeliveryItem.kind == "pick")).all()
            out[d.period] = (d.status, d.note, sorted(titles))
    return out


def tick(db, settings, when: datetime):
    """One scheduler tick at `when`: plan who is due, send what is planned."""
    with time_machine.travel(when, tick=False):
        return sending.run_pass(db, settings, due_only=True)


def test_a_quiet_day_sends_nothing_records_why_and_rolls_its_papers_over(db, settings_for, smtp_sink):
    settings = mail_settings(settings_for, db, smtp_sink, smtp={"pool_size": 1})
    subscribers.add(db, "ada@example.org", topics=[TOPIC], hour=8, min_papers=3)
    monday = at("2024-06-03T08:05Z")
    add_tagged(db, 2, monday - timedelta(hours=6), "monday")
    add_tagged(db, 5, monday - timedelta(hours=6), "monday", matching=False)  # below the bar: no topic match

    first = tick(db, settings, monday)
    assert (first.plan.planned, first.plan.quiet, first.send.sent) == (0, 1, 0) and smtp_sink.messages == []
    assert ledger(db, "ada@example.org") == {
        "2024-06-03": ("skipped", "2 papers above the bar, fewer than 3", [])}
    again = tick(db, settings, monday + timedelta(hours=1))  # the day is decided: not planned again
    assert (again.plan.planned, again.plan.quiet, again.plan.already) == (0, 0, 1)
    with time_machine.travel(monday + timedelta(hours=2), tick=False):
        (row,) = planning.due_at(StoreReads(db), monday + timedelta(hours=2))
    assert row["due"] is False and row["reason"] == (
        "quiet day 2024-06-03 (2 papers above the bar, fewer than 3): nothing sent, its papers roll over to "
        "the next edition")

    add_tagged(db, 2, monday + DAY - timedelta(hours=6), "tuesday")
    second = tick(db, settings, monday + DAY)
    assert (second.plan.planned, second.plan.quiet, second.send.sent) == (1, 0, 1)
    status, note, titles = ledger(db, "ada@example.org")["2024-06-04"]
    assert status == "sent" and note is None
    assert titles == sorted([f"Graph neural networks for {d} problem {i}" for d in ("monday", "tuesday")
                             for i in (0, 1)])  # Monday's papers above the bar, none of the others
    body = smtp_sink.messages[0].message.get_body(("plain",)).get_content()
    assert "Graph neural networks for monday problem 0" in body and "Soil chemistry" not in body

    # Nothing new on Wednesday: quiet again; Thursday's edition has Thursday's papers only (never twice)
    assert tick(db, settings, monday + 2 * DAY).plan.quiet == 1
    add_tagged(db, 3, monday + 3 * DAY - timedelta(hours=6), "thursday")
    assert tick(db, settings, monday + 3 * DAY).send.sent == 1
    book = ledger(db, "ada@example.org")
    assert book["2024-06-05"] == ("skipped", "no paper above the bar, fewer than 3", [])
    assert book["2024-06-06"][2] == sorted(f"Graph neural networks for thursday problem {i}"
                                           for i in range(3))
    assert len(smtp_sink.messages) == 2


def test_quiet_day_crash_and_second_planner_change_nothing(db, settings_for):
    """A quiet day is one ledger row written like any edition: a second planner (or a restart after a
    crash) finds the period decided; no sender ever claims it; its papers stay unsent."""
    settings = settings_for(db.url, sources={})
    subscribers.add(db, "ada@example.org", topics=[TOPIC], hour=8, min_papers=2)
    now = at("2024-06-03T09:00Z")
    add_tagged(db, 1, now - timedelta(hours=3), "monday")
    with time_machine.travel(now, tick=False):
        first = planning.plan(db, settings, due_only=True)
        second = planning.plan(db, settings, due_only=True)
        assert sending.pending_count(db, now=now) == 0
    assert (first.quiet, second.quiet, second.already) == (1, 0, 1)
    with db.session() as s:
        assert s.scalars(select(DeliveryItem)).all() == []
    # `digest send` (not waiting for a slot) plans the next day's edition with the rolled-over paper
    add_tagged(db, 1, now + DAY - timedelta(hours=3), "tuesday")
    with time_machine.travel(now + DAY, tick=False):
        assert planning.plan(db, settings).planned == 1
    assert len(ledger(db, "ada@example.org")["2024-06-04"][2]) == 2


def test_minimum_above_papers_per_digest_never_blocks_an_edition(db, settings_for):
    settings = settings_for(db.url, sources={}, digest={"max_items": 2})
    subscribers.add(db, "ada@example.org", topics=[TOPIC], min_papers=5)  # config allows 2 per edition
    add_tagged(db, 3, at("2024-06-03T02:00Z"), "monday")
    with time_machine.travel(at("2024-06-03T09:00Z"), tick=False):
        report = planning.plan(db, settings, due_only=True)
    assert (report.planned, report.quiet) == (1, 0)
    with pytest.raises(SubscriberError, match="cannot be more than the papers per digest"):
        subscribers.add(db, "bob@example.org", topics=[TOPIC], min_papers=5, max_items=3)


def test_best_of_week_picks_from_the_whole_week(db, settings_for):
    """Both had a daily edition of two papers on Thursday, then switched to weekly on Sundays: plain
    weekly starts where the last edition stopped; best of the week looks at the whole week, so the
    week's papers Thursday's edition had no room for are in it (and none it sent)."""
    settings = settings_for(db.url, sources={})
    for email in ("weekly@example.org", "best@example.org"):
        subscribers.add(db, email, topics=[TOPIC], hour=8, max_items=2)
    monday = at("2024-06-03T06:00Z")
    for i, tag in enumerate(("monday", "tuesday", "wednesday", "thursday")):
        add_tagged(db, 1, monday + i * DAY, tag)
    thursday = monday + timedelta(days=3, hours=3)
    with time_machine.travel(thursday, tick=False):
        assert planning.plan(db, settings).planned == 2
    sent = ledger(db, "best@example.org")["2024-06-06"][2]
    assert len(sent) == 2
    subscribers.change(db, "weekly@example.org", frequency="weekly", weekday="sunday", max_items=20)
    subscribers.change(db, "best@example.org", frequency="weekly", weekday="sunday", max_items=20,
                       best_of_week=True)
    for i, tag in enumerate(("friday", "saturday"), 4):
        add_tagged(db, 1, monday + i * DAY, tag)
    sunday = at("2024-06-09T08:05Z")
    with time_machine.travel(sunday, tick=False):
        assert planning.plan(db, settings, due_only=True).planned == 2
    weekly = ledger(db, "weekly@example.org")["2024-W23"][2]
    best = ledger(db, "best@example.org")["2024-W23"][2]
    days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
    assert sorted(t.split()[4] for t in weekly) == ["friday", "saturday"]  # since Thursday's edition only
    assert sorted(best) == sorted(f"Graph neural networks for {d} problem 0" for d in days
                                  if f"Graph neural networks for {d} problem 0" not in sent)
    assert len(best) == 4
    with db.session() as s:
        start = s.scalar(select(Delivery.window_start).where(Delivery.email == "best@example.org",
                                                              Delivery.period == "2024-W23"))
    assert start == sunday - timedelta(days=7)


def test_best_of_week_ranks_the_week_without_favouring_the_newest():
    now = at("2024-06-09T08:00Z")
    old = Paper(id=1, title="Graph neural networks for molecules", upvotes=500, first_seen_at=now - 6 * DAY,
                abstract="We study graph neural networks for molecule property prediction on benchmarks.")
    new = Paper(id=2, title="Graph neural networks for circuits", upvotes=100, first_seen_at=now - DAY / 2,
                abstract="We study graph neural networks for circuit timing estimation on benchmarks.")
    corpus = build_corpus([old, new], now=now)
    plain, best = (rank_with(corpus,
                             [Profile(subscriber_id=1, topics=[TOPIC], max_items=1, whole_window=w)])[1]
                   for w in (False, True))
    assert [p.paper_id for p in plain] == [2] and [p.paper_id for p in best] == [1]


def test_quiet_reason_is_the_due_reason():
    sched = Schedule("weekly", 8, "UTC", 6)
    last = LastEdition("2024-W23", at("2024-06-09T08:00Z"), quiet="1 paper above the bar, fewer than 3")
    d = check(sched, at("2024-06-09T12:00Z"), last)
    assert not d.due and d.reason.startswith("quiet week 2024-W23 (1 paper above the bar, fewer than 3)")
    later = check(sched, at("2024-06-16T09:00Z"), last)
    assert later.due and later.reason.endswith("no edition for 2024-W24 yet")


def cli(tmp_path, db, *args: str):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[database]\nurl = "{db.url}"\n[digest]\nranker = "lexical"\n[sources]\n'
                   f'[web]\nsecret_file = "{tmp_path / "secret"}"\n')
    return CliRunner().invoke(main, ["--config", str(cfg), *args])


def test_cli_add_update_and_show_the_cadence(db, tmp_path):
    out = cli(tmp_path, db, "subscribers", "add", "ada@example.org", "--topic", TOPIC, "--min-papers", "3")
    assert out.exit_code == 0 and out.output == (
        "added ada@example.org: daily at 08:00 UTC, at least 3 papers an edition (1 topics)\n")
    bad = cli(tmp_path, db, "subscribers", "update", "ada@example.org", "--best-of-week")
    assert bad.exit_code == 1 and bad.output == (
        "Error: best of the week is a weekly digest: set the frequency to weekly, not 'daily'\n")
    ok = cli(tmp_path, db, "subscribers", "update", "ada@example.org", "--frequency", "weekly", "--weekday",
             "friday", "--best-of-week")
    assert ok.exit_code == 0 and ok.output == (
        "updated ada@example.org: Fridays at 08:00 UTC, best of the week, at least 3 papers an edition\n")
    shown = json.loads(cli(tmp_path, db, "subscribers", "show", "ada@example.org", "--json").output)
    assert (shown["frequency"], shown["weekday"], shown["min_papers"],
            shown["best_of_week"]) == ("weekly", 4, 3, True)
    off = cli(tmp_path, db, "subscribers", "update", "ada@example.org", "--min-papers", "0", "--frequency",
              "daily")
    assert off.exit_code == 0 and off.output == "updated ada@example.org: daily at 08:00 UTC\n"
    nothing = cli(tmp_path, db, "subscribers", "update", "ada@example.org")
    assert nothing.exit_code == 2 and "nothing to change" in nothing.output
    missing = cli(tmp_path, db, "subscribers", "update", "zed@example.org", "--min-papers", "2")
    assert missing.exit_code == 1 and missing.output == "Error: no subscriber zed@example.org\n"
    assert subscribers.get(db, "ada@example.org").min_papers is None


def test_csv_round_trip_keeps_the_cadence(db, tmp_path):
    import io

    subscribers.add(db, "ada@example.org", topics=[TOPIC], frequency="weekly", weekday="friday", min_papers=2,
                    best_of_week=True)
    out = io.StringIO()
    subscriber_csv.export_csv(db, out)
    text = out.getvalue()
    assert (text.splitlines()[0].endswith(",min_papers,best_of_week")
            and text.splitlines()[1].endswith(",2,yes"))
    subscribers.remove(db, "ada@example.org")
    assert subscriber_csv.import_csv(db, io.StringIO(text)) == (1, 0, [])
    v = subscribers.get(db, "ada@example.org")
    assert (v.min_papers, v.best_of_week, v.weekday) == (2, True, 4)
    bad = io.StringIO("email,frequency,best_of_week\n"
                      "bob@example.org,daily,yes\ncy@example.org,weekly,maybe\n")
    assert subscriber_csv.import_csv(db, bad) == (0, 0, [
        "line 2, column best_of_week: best of the week is a weekly digest: set the frequency to weekly, not "
        "'daily'",
        "line 3, column best_of_week: best of week must be yes or no, not 'maybe'"])


def test_preferences_page_cadence_block(db, settings_for):
    import re

    from starlette.testclient import TestClient

    from digest.web.app import create_app

    base = "http://testserver"
    settings = settings_for(db.url, web={"base_url": base}, mail={"transport": "outbox"})
    sid = subscribers.add(db, "ada@example.org", topics=[TOPIC]).id
    url = links_for(settings).preferences(sid).removeprefix(base)
    c = TestClient(create_app(settings, db), base_url=base, follow_redirects=False)
    page = c.get(url)
    assert page.status_code == 200 and "Quiet days" in page.text
    # daily: best of the week is for weekly ones
    assert re.search(r'name="best_of_week"[^>]*disabled', page.text)
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = c.post(url + "/cadence", data={"csrf": token, "min_papers": "3"})
    assert r.status_code == 303 and r.headers["location"] == f"{url}?saved=cadence"
    assert subscribers.get_by_id(db, sid).min_papers == 3
    bad = c.post(url + "/cadence", data={"csrf": token, "min_papers": "3", "best_of_week": "yes"})
    assert bad.status_code == 400 and "best of the week is a weekly digest" in bad.text
    bad = c.post(url + "/cadence", data={"csrf": token, "min_papers": "lots"})
    assert bad.status_code == 400 and "min papers must be a whole number" in bad.text
    assert subscribers.get_by_id(db, sid).min_papers == 3  # nothing stored lost
    subscribers.change(db, "ada@example.org", frequency="weekly")
    assert c.post(url + "/cadence",
                  data={"csrf": token, "min_papers": "", "best_of_week": "yes"}).status_code == 303
    v = subscribers.get_by_id(db, sid)
    assert (v.min_papers, v.best_of_week) == (None, True)
    page = c.get(url + "?saved=cadence").text
    assert re.search(r'name="best_of_week"[^>]*checked', page) and "Saved." in page
    # choosing another frequency in the main form ends best of the week (it is a weekly digest)
    form = {"csrf": token, "topics": TOPIC, "excludes": "", "frequency": "daily", "weekday": "0", "hour": "8",
            "timezone": "UTC", "max_items": ""}
    assert c.post(url, data=form).status_code == 303 and subscribers.get_by_id(db, sid).best_of_week is False
    # one cadence rule everywhere: fewer papers per digest than the minimum is refused, as the CLI does
    subscribers.change(db, "ada@example.org", min_papers=5)
    bad = c.post(url, data={**form, "max_items": "3"})
    refusal = "min papers (5) cannot be more than the papers per digest (3)"
    assert bad.status_code == 400 and refusal in bad.text
    v = subscribers.get_by_id(db, sid)
    assert (v.min_papers, v.max_items) == (5, None)  # nothing written
    with pytest.raises(SubscriberError, match=r"min papers \(5\) cannot be more than the papers per digest"):
        subscribers.change(db, "ada@example.org", max_items=3)  # `digest subscribers update`

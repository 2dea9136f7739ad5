"""Planning on a controlled clock (time-machine), against SQLite and PostgreSQL: the scheduler plans
only who is due, across DST changes, with one catch-up edition after downtime; `digest send` still
plans everyone; `digest due` says who is due and why."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from click.testing import CliRunner
from sqlalchemy import select
from test_schedule import TRANSITIONS, at, local

from digest.cli import main
from digest.store.models import Delivery, DeliveryItem, Paper
from digest.subscriptions import subscribers
from digest.usecases.planning import plan
from tests.factories import add_tagged

TOPIC = "graph neural networks"


def editions(db, email: str) -> dict[str, datetime]:
    with db.session() as s:
        rows = s.execute(select(Delivery.period, Delivery.planned_at).where(Delivery.email == email)).all()
    return dict(rows)


@pytest.mark.parametrize("zone,day,hour,kind,expected", TRANSITIONS[:6],
                         ids=[f"{t[0]}-{t[1]}" for t in TRANSITIONS[:6]])
def test_scheduler_planning_across_dst(db, settings_for, zone, day, hour, kind, expected):
    settings = settings_for(db.url, sources={})
    for freq in ("daily", "weekdays", "weekly"):
        subscribers.add(db, f"{freq}@example.org", topics=[TOPIC], frequency=freq, timezone=zone, hour=hour,
                        weekday="sunday")
    start, end = local(day - timedelta(days=1), 12, zone), local(day + timedelta(days=1), 12, zone)
    planned = 0
    with time_machine.travel(start, tick=False) as clock:  # an hourly tick, new papers every 6 hours
        while (now := datetime.now(UTC)) < end:
            if (now - start).total_seconds() % (6 * 3600) == 0:
                add_tagged(db, 2, now, now.isoformat())
            planned += plan(db, settings, due_only=True).planned
            clock.shift(timedelta(hours=1))
    saturday, monday = day - timedelta(days=1), day + timedelta(days=1)
    assert editions(db, "daily@example.org") == {
        saturday.isoformat(): start,  # its slot had passed when the walk began: first edition at once
        day.isoformat(): at(expected),  # at the jump, or at the first of the two occurrences
        monday.isoformat(): local(monday, hour, zone),
    }
    assert editions(db, "weekdays@example.org") == {monday.isoformat(): local(monday, hour, zone)}
    (week,) = editions(db, "weekly@example.org").items()
    assert week[1] == at(expected)
    assert planned == 5  # never an attempt the unique key had to turn away


def test_catch_up_after_downtime(db, settings_for):
    settings = settings_for(db.url, sources={})
    subscribers.add(db, "ada@example.org", topics=[TOPIC], timezone="Europe/Paris", hour=8)
    monday = at("2024-06-03T06:05Z")  # 08:05 CEST
    add_tagged(db, 3, monday - timedelta(hours=1), "monday")
    with time_machine.travel(monday, tick=False):
        assert plan(db, settings, due_only=True).planned == 1
    for i, tag in enumerate(("tuesday", "wednesday", "thursday"), 1):  # the scheduler is down meanwhile
        add_tagged(db, 2, monday + timedelta(days=i), tag)
    back = at("2024-06-06T14:00Z")  # Thursday afternoon
    with time_machine.travel(back, tick=False):
        report = plan(db, settings, due_only=True)
        assert (report.planned, report.already) == (1, 0)
        again = plan(db, settings, due_only=True)
        assert (again.planned, again.already) == (0, 1)
    assert list(editions(db, "ada@example.org")) == ["2024-06-03", "2024-06-06"]
    with db.session() as s:
        d = s.scalars(select(Delivery).where(Delivery.period == "2024-06-06")).one()
        titles = s.scalars(select(Paper.title).join(DeliveryItem, DeliveryItem.paper_id == Paper.id)
                           .where(DeliveryItem.delivery_id == d.id, DeliveryItem.kind == "pick")).all()
        assert d.window_start == monday and d.window_end == back
    assert len(titles) == 6 and not any("monday" in t for t in titles)  # what was missed, not a repeat


def test_catch_up_is_bounded_by_max_lookback(db, settings_for):
    settings = settings_for(db.url, sources={}, digest={"max_lookback_days": 2})
    subscribers.add(db, "ada@example.org", topics=[TOPIC], timezone="UTC", hour=8)
    first = at("2024-06-01T08:00Z")
    add_tagged(db, 1, first - timedelta(hours=1), "start")
    with time_machine.travel(first, tick=False):
        plan(db, settings, due_only=True)
    for i in range(1, 10):
        add_tagged(db, 1, first + timedelta(days=i), f"day{i}")
    back = at("2024-06-10T09:00Z")
    with time_machine.travel(back, tick=False):
        assert plan(db, settings, due_only=True).planned == 1
    with db.session() as s:
        d = s.scalars(select(Delivery).where(Delivery.period == "2024-06-10")).one()
        n = len(s.scalars(select(DeliveryItem).where(DeliveryItem.delivery_id == d.id,
                                                      DeliveryItem.kind == "pick")).all())
        assert d.window_start == back - timedelta(days=2)
    assert n == 2  # day 8 and day 9 (day 10 is added later in the day); nothing older than two days


def test_manual_send_and_scheduler_share_the_period(db, settings_for):
    settings = settings_for(db.url, sources={})
    subscribers.add(db, "ada@example.org", topics=[TOPIC], timezone="Europe/Paris", hour=8)
    subscribers.add(db, "bob@example.org", topics=[TOPIC], timezone="Europe/Paris", hour=8,
                    frequency="weekdays")
    add_tagged(db, 3, at("2024-06-07T00:00Z"), "friday")
    with time_machine.travel(at("2024-06-07T04:00Z"), tick=False):  # Friday 06:00 in Paris
        early = plan(db, settings, due_only=True)
        assert (early.planned, early.not_due) == (0, 2)  # the scheduler waits for 08:00
        assert plan(db, settings).planned == 2  # `digest send` does not wait
    with time_machine.travel(at("2024-06-07T06:05Z"), tick=False):  # 08:05: the period has its edition
        on_time = plan(db, settings, due_only=True)
        assert (on_time.planned, on_time.already) == (0, 2)
    add_tagged(db, 3, at("2024-06-08T00:00Z"), "saturday")
    with time_machine.travel(at("2024-06-08T07:00Z"), tick=False):  # Saturday 09:00
        sat = plan(db, settings, due_only=True)
        assert (sat.planned, sat.not_due) == (1, 1)  # ada; bob has no Saturday edition
        assert plan(db, settings).planned == 1  # but `digest send` sends to bob all the same
    assert list(editions(db, "bob@example.org")) == ["2024-06-07", "2024-06-08"]


def test_digest_due_command(db, settings_for, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[database]\nurl = "{db.url}"\n[sources]\n[web]\nsecret_file = "{tmp_path / "secret"}"\n')
    subscribers.add(db, "ada@example.org", topics=[TOPIC], timezone="Europe/Berlin", hour=2)
    subscribers.add(db, "bob@example.org", topics=[TOPIC], timezone="America/New_York", hour=1,
                    frequency="weekly",
                    weekday="sunday")
    subscribers.add(db, "cy@example.org", topics=[TOPIC], timezone="Asia/Tokyo", hour=9, frequency="weekdays")
    runner = CliRunner()

    def due(*args: str) -> str:
        result = runner.invoke(main, ["--config", str(cfg), "due", *args])
        assert result.exit_code == 0, result.output
        return result.output

    # 01:00 UTC on 31 March 2024: 03:00 CEST in Berlin, just after the jump over 02:00
    out = due("--at", "2024-03-31T01:00:00Z", "--all")
    assert "ada@example.org                  due" in out
    assert "slot 2024-03-31 03:00 CEST passed; first edition" in out
    assert "bob@example.org                  not due  2024-W13" in out and "not reached yet" in out
    assert "cy@example.org                   not due  2024-03-31" in out and "no edition on Sundays" in out
    assert out.strip().endswith("1 due, 2 not due at 2024-03-31T01:00:00+00:00")
    assert "bob@" not in due("--at", "2024-03-31T01:00:00Z")  # without --all: only who is due

    with time_machine.travel(at("2024-11-03T05:30Z"), tick=False):  # 01:30 EDT, the first of two
        data = json.loads(due("--json", "--subscriber", "bob@example.org"))
    assert data["due"] == 1
    (row,) = data["subscribers"]
    assert row["period"] == "2024-W44" and row["slot"] == "2024-11-03T05:00:00+00:00"
    assert row["next_at"] == "2024-11-10T06:00:00+00:00"  # a week later, in EST

    bad = runner.invoke(main, ["--config", str(cfg), "due", "--at", "next tuesday"])
    assert bad.exit_code == 1 and "not an ISO 8601 date and time" in bad.output

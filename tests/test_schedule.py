"""Due-ness (digest.planning.schedule): daily, weekdays and weekly subscribers in several time zones, walked
tick by tick on a controlled clock across both daylight-saving transitions of 2024."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from digest.planning.schedule import check, next_slot, parse_instant, period_for, slot_on
from digest.records import LastEdition as Edition
from digest.records import Schedule

# zone, transition day, the hour that is missing ("gap") or happens twice ("repeat"), and the instant
# the edition of that day must go out: when the clock jumps, or the first of the two occurrences.
TRANSITIONS = [
    ("Europe/Berlin", date(2024, 3, 31), 2, "gap", "2024-03-31T01:00Z"),  # 02:00 CET -> 03:00 CEST
    ("Europe/Berlin", date(2024, 10, 27), 2, "repeat", "2024-10-27T00:00Z"),  # 02:00 CEST, then CET
    ("America/New_York", date(2024, 3, 10), 2, "gap", "2024-03-10T07:00Z"),
    ("America/New_York", date(2024, 11, 3), 1, "repeat", "2024-11-03T05:00Z"),  # 01:00 EDT, then EST
    ("Australia/Sydney", date(2024, 10, 6), 2, "gap", "2024-10-05T16:00Z"),  # southern spring
    ("Australia/Sydney", date(2024, 4, 7), 2, "repeat", "2024-04-06T15:00Z"),  # 02:00 AEDT, then AEST
    ("America/Havana", date(2024, 3, 10), 0, "gap", "2024-03-10T05:00Z"),  # midnight does not exist
]
TICK = timedelta(minutes=5)


def walk(schedule: Schedule, start: datetime, end: datetime,
         last: Edition | None = None) -> dict[str, datetime]:
    """A scheduler ticking every 5 minutes on a controlled clock, planning whenever `check` says due.

    Returns {period: when its edition was planned}; asserts that no period is planned twice."""
    planned: dict[str, datetime] = {}
    with time_machine.travel(start, tick=False) as clock:
        while (now := datetime.now(UTC)) < end:
            due = check(schedule, now, last)
            if due.due:
                assert due.period not in planned, \
                    f"{due.period} planned twice: {planned[due.period]} and {now}"
                planned[due.period] = now
                last = Edition(due.period, now)
            clock.shift(TICK)
    return planned


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def local(day: date, hour: int, zone: str) -> datetime:
    return datetime.combine(day, time(hour), ZoneInfo(zone)).astimezone(UTC)


@pytest.mark.parametrize("zone,day,hour,kind,expected", TRANSITIONS,
                         ids=[f"{t[0]}-{t[1]}" for t in TRANSITIONS])
def test_transitions_are_real(zone, day, hour, kind, expected):
    tz = ZoneInfo(zone)
    naive = datetime.combine(day, time(hour))
    first, second = naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)
    if kind == "gap":  # the wall time does not survive a round trip through UTC
        assert first.astimezone(UTC).astimezone(tz).hour != hour
    else:  # the wall time happens twice, an hour apart
        assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)
    assert slot_on(day, hour, tz) == at(expected)


@pytest.mark.parametrize("zone,day,hour,kind,expected", TRANSITIONS,
                         ids=[f"{t[0]}-{t[1]}" for t in TRANSITIONS])
def test_daily_across_dst(zone, day, hour, kind, expected):
    start, end = local(day - timedelta(days=2), 0, zone), local(day + timedelta(days=3), 0, zone)
    planned = walk(Schedule("daily", hour, zone), start, end)
    days = [day + timedelta(days=i) for i in range(-2, 3)]
    want = {d.isoformat(): at(expected) if d == day else local(d, hour, zone) for d in days}
    assert planned == want
    if kind == "repeat":  # the second occurrence of the hour finds the edition already planned
        again = at(expected) + timedelta(hours=1)
        assert not check(Schedule("daily", hour, zone), again, Edition(day.isoformat(), at(expected))).due


@pytest.mark.parametrize("zone,day,hour,kind,expected", TRANSITIONS,
                         ids=[f"{t[0]}-{t[1]}" for t in TRANSITIONS])
def test_weekdays_across_dst(zone, day, hour, kind, expected):
    assert day.weekday() == 6  # every transition above is on a Sunday: no weekdays edition that day
    start, end = local(day - timedelta(days=2), 0, zone), local(day + timedelta(days=3), 0, zone)  # Fri..Tue
    planned = walk(Schedule("weekdays", hour, zone), start, end)
    friday, monday, tuesday = day - timedelta(days=2), day + timedelta(days=1), day + timedelta(days=2)
    assert planned == {d.isoformat(): local(d, hour, zone) for d in (friday, monday, tuesday)}


@pytest.mark.parametrize("zone,day,hour,kind,expected", TRANSITIONS,
                         ids=[f"{t[0]}-{t[1]}" for t in TRANSITIONS])
def test_weekly_across_dst(zone, day, hour, kind, expected):
    start, end = local(day - timedelta(days=9), 0, zone), local(day + timedelta(days=2), 0, zone)  # 2 Sundays
    planned = walk(Schedule("weekly", hour, zone, weekday=6), start, end)
    week_before = day - timedelta(days=7)
    assert planned == {
        period_for("weekly", zone, local(week_before, 12, zone)): local(week_before, hour, zone),
        period_for("weekly", zone, at(expected)): at(expected),
    }


def test_whole_year_one_edition_per_period():
    """Every period of 2024 gets exactly one edition, at the first tick at or after its slot."""
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)
    for sched in (Schedule("daily", 2, "Europe/Berlin"), Schedule("weekly", 1, "America/New_York", weekday=6),
                  Schedule("weekdays", 2, "Australia/Sydney")):
        planned, now, last = {}, start, None
        while now < end:  # jump from slot to slot: the same answer a 5-minute tick gives, faster
            due = check(sched, now, last)
            if due.due:
                assert due.period not in planned
                assert due.slot is not None and due.slot <= now
                planned[due.period], last = now, Edition(due.period, now)
            now = due.next_at if not due.due else now + TICK
        if sched.frequency == "daily":
            assert len(planned) == 366
        elif sched.frequency == "weekly":
            assert len(planned) == 52 + 1  # 2024-W01 .. 2024-W52, and 2025-W01 starts on 2024-12-30
        else:
            assert len(planned) == 262 + 1  # 1 January 2025 begins in Sydney while UTC is still in 2024


def test_a_day_that_never_happened():
    """Samoa skipped 30 December 2011: no edition for it, none twice, the next day as usual."""
    zone = "Pacific/Apia"
    planned = walk(Schedule("daily", 8, zone), local(date(2011, 12, 28), 0, zone),
                   local(date(2012, 1, 1), 0, zone))
    assert sorted(planned) == ["2011-12-28", "2011-12-29", "2011-12-31"]
    assert slot_on(date(2011, 12, 30), 8, ZoneInfo(zone)) is None


def test_catch_up_after_downtime_is_one_edition():
    sched = Schedule("daily", 8, "Europe/Paris")
    monday = Edition("2024-06-03", at("2024-06-03T06:00Z"))  # 08:00 CEST
    # Down from Monday until Thursday 11:00 local: one edition right away, then Friday's as usual.
    planned = walk(sched, at("2024-06-06T09:00Z"), at("2024-06-07T12:00Z"), last=monday)
    assert planned == {"2024-06-06": at("2024-06-06T09:00Z"), "2024-06-07": at("2024-06-07T06:00Z")}
    due = check(sched, at("2024-06-06T09:00Z"), monday)
    assert due.due and "catch-up, last edition 2024-06-03" in due.reason
    # Back at 07:00 local on Thursday: Thursday's slot is near, so nothing until then.
    early = check(sched, at("2024-06-06T05:00Z"), monday)
    assert not early.due and early.next_at == at("2024-06-06T06:00Z")


@pytest.mark.parametrize("sched,now,last,due,reason", [
    (Schedule("daily", 8, "Europe/London"), "2024-06-03T06:59Z", None, False,
     "slot 2024-06-03 08:00 BST not reached"),
    (Schedule("daily", 8, "Europe/London"), "2024-06-03T07:00Z", None, True, "first edition"),
    (Schedule("daily", 8, "Europe/London"), "2024-06-03T09:00Z",
     Edition("2024-06-03", at("2024-06-03T07:00Z")),
     False, "edition 2024-06-03 already planned at 2024-06-03 08:00 BST"),
    (Schedule("daily", 8, "Europe/London"), "2024-06-04T07:00Z",
     Edition("2024-06-03", at("2024-06-03T07:00Z")),
     True, "no edition for 2024-06-04 yet"),
    (Schedule("weekdays", 8, "Asia/Tokyo"), "2024-06-08T03:00Z", None, False, "no edition on Saturdays"),
    (Schedule("weekly", 9, "America/Chicago", weekday=2), "2024-06-07T15:00Z", None, True,
     "slot 2024-06-05 09:00 CDT passed"),
    # switched from daily to weekly after this week's slot: the daily edition stands for the week
    (Schedule("weekly", 8, "UTC", weekday=0), "2024-06-05T12:00Z",
     Edition("2024-06-04", at("2024-06-04T08:00Z")),
     False, "after this slot"),
])
def test_reasons(sched, now, last, due, reason):
    got = check(sched, at(now), last)
    assert got.due is due
    assert reason in got.reason


def test_next_slot_and_periods():
    sched = Schedule("weekly", 2, "Europe/Berlin", weekday=6)
    assert next_slot(sched, at("2024-03-25T00:00Z")) == at("2024-03-31T01:00Z")  # the jump, 03:00 CEST
    assert period_for("weekly", "Europe/Berlin", at("2024-12-30T12:00Z")) == "2025-W01"
    assert period_for("daily", "Pacific/Auckland", at("2024-06-03T13:00Z")) == "2024-06-04"


def test_parse_instant():
    assert parse_instant("2024-03-31T03:30+02:00") == at("2024-03-31T01:30Z")
    assert parse_instant("2024-03-31T01:30:00Z") == at("2024-03-31T01:30Z")
    assert parse_instant("2024-03-31 01:30") == at("2024-03-31T01:30Z")  # no offset: UTC
    with time_machine.travel(at("2024-01-02T03:04Z"), tick=False):
        assert parse_instant(None) == at("2024-01-02T03:04Z")
    with pytest.raises(ValueError, match="not an ISO 8601"):
        parse_instant("tomorrow at nine")

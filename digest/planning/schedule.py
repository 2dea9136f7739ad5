"""When is a subscriber's edition due? Pure functions of a schedule, the last edition and an instant.

- A *period* is the subscriber's local date (daily, weekdays) or ISO week (weekly). The ledger holds at
  most one edition per subscriber and period, so whatever plans twice, sends once.
- The period's *slot* is `hour`:00 local time on its delivery day: that day (daily), that day if it is
  Monday to Friday (weekdays), or the chosen `weekday` of that ISO week (weekly).
- A subscriber is *due* at `now` when `now` is at or past the slot of the period it falls in and that
  period has no edition yet. A slot missed during downtime is made up at the next tick within the same
  period; a longer outage ends in one edition at the next slot, covering everything since the last one.
- A *quiet* period (the subscriber's cadence asks for at least N papers and fewer came) has a skipped
  edition in the ledger: it is not due again, and `digest due` says why; its papers roll over.
- Daylight saving time: a local hour that does not exist (spring forward) is taken at the instant the
  clock jumps; one that happens twice (fall back) counts at its first occurrence, and the second finds
  the period's edition already there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from digest.records import DueState, LastEdition, Schedule
from digest.wording import due_reason


@dataclass(frozen=True)
class Due:
    due: bool
    period: str  # the period `now` falls in: the edition's key if one is planned now
    state: DueState  # why, as data
    slot: datetime | None  # this period's slot (UTC); None when the period has no delivery day
    next_at: datetime | None  # the first slot after `now` (UTC)

    @property
    def reason(self) -> str:
        """Why, in one line (`digest due`)."""
        return due_reason(self.state, ZoneInfo(self.state.schedule.timezone))


def period_for(frequency: str, timezone: str, now: datetime) -> str:
    """The period a subscriber is in at `now`: their local date, or ISO week ("2026-W47") for weekly."""
    local = now.astimezone(ZoneInfo(timezone))
    if frequency == "weekly":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.date().isoformat()


def slot_on(day: date, hour: int, tz: ZoneInfo) -> datetime | None:
    """`hour`:00 local on `day` as a UTC instant, by the DST rules above; None if `day` never happened."""
    local = datetime.combine(day, time(hour), tzinfo=tz)
    for candidate in (local, local.replace(fold=1)):  # fold=0: after a gap; fold=1: before one at midnight
        at = candidate.astimezone(UTC)
        if at.astimezone(tz).date() == day:
            return at
    return None


def is_delivery_day(schedule: Schedule, day: date) -> bool:
    if schedule.frequency == "daily":
        return True
    if schedule.frequency == "weekdays":
        return day.weekday() < 5
    if schedule.frequency == "weekly":
        return day.weekday() == schedule.weekday
    raise ValueError(f"unknown frequency {schedule.frequency!r}")


def period_slot(schedule: Schedule, now: datetime) -> datetime | None:
    """The slot (UTC) of the period `now` is in, or None (a weekend day for weekdays)."""
    tz = ZoneInfo(schedule.timezone)
    today = now.astimezone(tz).date()
    if schedule.frequency == "weekly":
        day = today + timedelta(days=schedule.weekday - today.weekday())
    elif is_delivery_day(schedule, today):
        day = today
    else:
        return None
    return slot_on(day, schedule.hour, tz)


def next_slot(schedule: Schedule, after: datetime) -> datetime | None:
    """The first slot strictly after `after` (UTC)."""
    return _search(schedule, after, +1)


def previous_slot(schedule: Schedule, before: datetime) -> datetime | None:
    """The last slot strictly before `before` (UTC)."""
    return _search(schedule, before, -1)


def last_slot(schedule: Schedule, now: datetime) -> datetime | None:
    """The latest slot at or before `now` (UTC): this period's once it has come, else the one before."""
    slot = period_slot(schedule, now)
    return slot if slot is not None and slot <= now else previous_slot(schedule, now)


def _search(schedule: Schedule, start: datetime, step: int) -> datetime | None:
    tz = ZoneInfo(schedule.timezone)
    day = start.astimezone(tz).date()
    for i in range(16):
        d = day + timedelta(days=step * i)
        if is_delivery_day(schedule, d) and (at := slot_on(d, schedule.hour, tz)) is not None:
            if (at > start) if step > 0 else (at < start):
                return at
    return None


def check(schedule: Schedule, now: datetime, last: LastEdition | None = None) -> Due:
    """Is an edition due at `now`, for which period, and why (`Due.reason` says it in one line)."""
    tz = ZoneInfo(schedule.timezone)
    now = now.astimezone(UTC)
    period, slot, upcoming = _slots(schedule, now)
    upcoming = next_due_slot(schedule, upcoming, last)

    def due(flag: bool, kind: str, **facts) -> Due:
        return Due(flag, period, DueState(kind, schedule, **facts), slot, upcoming)

    if slot is None:
        return due(False, "no_day", weekday=now.astimezone(tz).weekday())
    if last is not None and last.period == period and last.quiet:
        return due(False, "quiet", period=period, note=last.quiet)
    if last is not None and last.period == period:
        return due(False, "planned", period=period, at=last.planned_at)
    if now < slot:
        return due(False, "not_yet", at=slot)
    if last is not None and last.planned_at >= slot:  # after a change of frequency or time zone
        return due(False, "planned_after", period=last.period, at=last.planned_at)
    if last is None:
        return due(True, "first", at=slot)
    before = previous_slot(schedule, slot)
    if before is not None and last.planned_at < before:
        return due(True, "catch_up", period=last.period, at=slot, note=last.quiet)
    return due(True, "due", period=period, at=slot)


def next_due_slot(schedule: Schedule, upcoming: datetime | None, last: LastEdition | None) -> datetime | None:
    """The next slot an edition can go at: `upcoming` (the first slot after now), unless its period
    already has the last edition (sent early: before a change of hour or day), then the slot after.
    The one rule for "next slot": `digest due` and the preferences page both show `Due.next_at`."""
    if upcoming is not None and last is not None and \
            period_for(schedule.frequency, schedule.timezone, upcoming) == last.period:
        return next_slot(schedule, upcoming)
    return upcoming


@lru_cache(maxsize=4096)
def _slots(schedule: Schedule, now: datetime) -> tuple[str, datetime | None, datetime]:
    """(period, its slot, the next slot) at `now`: the same for every subscriber of one schedule, so
    planning 100,000 works them out once per schedule, not per subscriber."""
    return period_for(schedule.frequency, schedule.timezone,
                      now), period_slot(schedule, now), next_slot(schedule, now)


def parse_instant(text: str | None) -> datetime:
    """An ISO 8601 instant for `digest due --at` ("2026-03-29T07:30+02:00", "...Z"); no offset means UTC."""
    if not text:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text.strip())
        at = (at.replace(tzinfo=UTC) if at.tzinfo is None else at).astimezone(UTC)
    except ValueError:
        raise ValueError(f"not an ISO 8601 date and time: {text!r} "
                         "(e.g. 2026-03-29T07:30:00+02:00)") from None
    except OverflowError:  # a day's offset past year 1 or 9999
        at = datetime.max.replace(tzinfo=UTC)
    if not INSTANTS[0] <= at <= INSTANTS[1]:
        raise ValueError(f"{text!r} is out of range: give an instant from {INSTANTS[0]:%Y} to "
                         f"{INSTANTS[1]:%Y}")
    return at


INSTANTS = (datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC))  # what `--at` may ask about

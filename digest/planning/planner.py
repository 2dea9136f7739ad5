"""The planner: which subscribers get an edition now, and the `Edition`s to write.

Pure functions over records. The pipeline reads a batch of subscribers and their ledger history,
asks `dues` and `triage` who is due, ranks the papers for those (`candidates.select`), turns the
selections into `Edition`s (`editions`) and hands them to the ledger. The ledger's unique
(subscriber, period) key makes a second planner, or a second run, a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from digest.planning.schedule import Due, check, last_slot, next_slot, period_for
from digest.records import (
    DeliveryStatus,
    Edition,
    LastEdition,
    Paper,
    SlotStatus,
    Subscriber,
    SubscriberStatus,
    iso,
    least_papers,
)
from digest.wording import SUPPRESSED_REASON, quiet_note, schedule_line, suppression_reason

if TYPE_CHECKING:  # the ranking (numpy, scipy) loads with planning, not with `digest due`
    from digest.planning.candidates import Selection

log = logging.getLogger("digest.planner")

@dataclass
class PlanReport:
    planned: int = 0
    nothing_new: int = 0  # nothing new for them, or a schedule that cannot be read (printed as "skipped")
    already: int = 0  # an edition for this period exists already
    suppressed: int = 0
    not_due: int = 0  # with due_only: this period's slot has not come, or the period has none
    quiet: int = 0  # fewer papers than the subscriber's minimum: recorded as skipped, their papers roll over
    editions: list[Edition] = field(default_factory=list)  # with dry_run: who would get what
    papers: dict[int, Paper] = field(default_factory=dict)  # with dry_run: the papers they name

    def summary(self) -> str:
        return (f"planned {self.planned}, already {self.already}, not due {self.not_due}, "
                f"nothing new {self.nothing_new}, suppressed {self.suppressed}"
                + (f", quiet {self.quiet}" if self.quiet else ""))


def period_of(sub: Subscriber, now: datetime) -> str:
    """The period a subscriber is in at `now` (the key of an edition planned now)."""
    return period_for(sub.frequency, sub.timezone, now)


def due_of(sub: Subscriber, now: datetime, last: LastEdition | None) -> Due | None:
    """Due-ness, or None (logged) for a schedule that cannot be read: one bad row never stops a run."""
    try:
        return check(sub.schedule, now, last)
    except (ValueError, KeyError) as err:  # an unknown time zone (ZoneInfoNotFoundError) or frequency
        log.warning("subscriber %s: unreadable schedule (%s %s %s): %s", sub.id, sub.frequency, sub.hour,
                    sub.timezone, err)
        return None


def dues(subs: Sequence[Subscriber], now: datetime,
         last: Mapping[int, LastEdition | None]) -> dict[int, Due | None]:
    return {s.id: due_of(s, now, last.get(s.id)) for s in subs}


def triage(subs: Sequence[Subscriber], due: Mapping[int, Due | None],
           suppressed: set[str] | Mapping[str, str],
           existing: set[tuple[int, str]], report: PlanReport, *, due_only: bool) -> list[Subscriber]:
    """The subscribers to plan an edition for now; the others are counted in `report`.

    Without `due_only` (`digest send`) everyone whose current period has no edition yet gets one,
    whatever their hour or day; with it (the scheduler) only those whose slot has come."""
    todo = []
    for s in subs:
        d = due[s.id]
        if d is None:
            report.nothing_new += 1
        elif s.email in suppressed:
            report.suppressed += 1
        elif (s.id, d.period) in existing:
            report.already += 1
        elif due_only and not d.due:
            report.not_due += 1
        else:
            todo.append(s)
    return todo


def quiet_reason(sub: Subscriber, picks: int, default_max: int) -> str | None:
    """Why this edition is a quiet one (the subscriber's cadence rule), or None to send it.

    "Above the bar" is the ranker's own: every pick has passed its eligibility (a topic match, or close
    to a liked paper; for a subscriber without topics, any trending paper). An edition with fewer picks
    than `min_papers` is skipped; the minimum never exceeds the papers an edition may hold."""
    need = least_papers(sub.min_papers, sub.max_items, default_max)
    if need is None or picks >= need:
        return None
    return quiet_note(picks, need)


def editions(subs: Sequence[Subscriber], due: Mapping[int, Due | None], selections: Mapping[int, Selection],
             now: datetime, report: PlanReport, default_max: int = 10) -> list[Edition]:
    """One `Edition` per subscriber with something new; those with nothing are counted as skipped.

    A quiet edition (`quiet_reason`) becomes a QUIET edition with its reason and no papers: the
    ledger records the day as decided, nothing is sent, and the next edition's window starts where
    the last edition that was not skipped stopped, so the quiet day's papers are in it."""
    out = []
    for s in subs:
        sel, d = selections[s.id], due[s.id]
        if d is None:
            report.nothing_new += 1
            continue
        why = quiet_reason(s, len(sel.picks), default_max)
        if why is not None:
            out.append(Edition(subscriber_id=s.id, email=s.email, period=d.period,
                               window_start=sel.window_start,
                               window_end=now, planned_at=now, status=DeliveryStatus.QUIET, note=why))
            continue
        if not sel.picks:
            report.nothing_new += 1
            continue
        out.append(Edition(subscriber_id=s.id, email=s.email, period=d.period, window_start=sel.window_start,
                           window_end=now, planned_at=now, picks=tuple(sel.picks),
                           trending=tuple(sel.trending)))
    return out


def due_row(sub: Subscriber, due: Due | None, last: LastEdition | None, suppressed: bool) -> dict:
    """One line of `digest due`: due or not, for which period, and why."""
    row = {"email": sub.email, "schedule": schedule_line(sub.schedule), "due": bool(due and due.due),
           "period": due.period if due else None, "reason": due.reason if due else "unreadable schedule",
           "slot": iso(due.slot) if due else None, "next_at": iso(due.next_at) if due else None,
           "last_period": last.period if last else None}
    if suppressed:
        row.update(due=False, reason=SUPPRESSED_REASON)
    return row


# ------------------------------------------------------------------------ "why no email today?"


@dataclass(frozen=True)
class News:
    """What a subscriber's next edition would hold now: papers new to them, and how many they would get."""

    fresh: int  # papers first seen since their last edition and never sent to them
    picks: int  # of those, the ones the ranker would send (past the bar of their topics)


def slot_status(sub: Subscriber, now: datetime, last: LastEdition | None, recent: Sequence[Edition],
                suppression: str | None, news: Callable[[], News]) -> SlotStatus:
    """Why the last slot sent what it sent, by the rules planning and `digest due` go by (`due_of`).

    `recent` are the subscriber's latest editions (the last slot's is among them if it has one);
    `suppression` the reason their address is suppressed; `news` (called only when it decides) what
    their edition would hold now: none new ("nothing new"), new but none past their topics' bar
    ("below the bar"), or some (the planner takes them at its next run, or at the next slot).
    digest.wording.slot_text says it in a sentence.
    """
    due = due_of(sub, now, last)
    if due is None:
        return SlotStatus("unreadable", None, None, None)
    slot = last_slot(sub.schedule, now)
    period = period_for(sub.frequency, sub.timezone, slot) if slot else None
    upcoming = due.next_at
    if sub.paused(now) and sub.paused_until is not None:
        upcoming = next_slot(sub.schedule, sub.paused_until - timedelta(microseconds=1))

    def status(reason: str, **facts) -> SlotStatus:
        return SlotStatus(reason, slot, upcoming, period, **facts)

    if sub.status == SubscriberStatus.UNSUBSCRIBED:
        return SlotStatus("unsubscribed", slot, None, period)
    if sub.status == SubscriberStatus.PENDING:
        return SlotStatus("pending", slot, None, period)
    if suppression is not None:
        return SlotStatus(suppression_reason(suppression), slot, None, period, suppression=suppression)
    # the edition of the period `now` is in (planning's key: it may have gone before this period's slot,
    # when the hour or day changed since), else the last slot's
    for key in (due.period, period):
        if (mine := next((e for e in recent if e.period == key), None)) is not None:
            return _edition_status(mine, status)
    if sub.paused(now):
        return status("paused", paused_until=sub.paused_until)
    if last is None and (slot is None or (sub.created_at is not None and sub.created_at > slot)):
        return status("first")
    found = news()
    if found.picks:
        return status("preparing" if due.due else "nothing_new", count=found.picks)
    if found.fresh:
        return status("below_bar", count=found.fresh)
    return status("nothing_new")


def _edition_status(e: Edition, status: Callable[..., SlotStatus]) -> SlotStatus:
    if e.status == DeliveryStatus.SENT:
        return status("sent", sent_at=e.sent_at, subject=e.subject)
    if e.status == DeliveryStatus.FAILED:
        return status("failed")
    if e.status == DeliveryStatus.SUPPRESSED:
        return status("suppressed")
    return status("on_its_way", retrying=e.status == DeliveryStatus.RETRY)

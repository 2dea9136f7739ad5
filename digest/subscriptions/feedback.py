"""'More like this' and 'less like this': the clicks a subscriber makes on a paper in a digest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from digest.records import utcnow
from digest.render.compose import paper_url
from digest.store import papers as paper_store
from digest.store.db import Database
from digest.store.models import Feedback
from digest.store.models import Paper as PaperRow
from digest.wording import one_line


def paper_title(db: Database, paper_id: int) -> str | None:
    """The paper's title on one line, or None if it is gone."""
    with db.session() as s:
        row = s.get(PaperRow, paper_id)
        return one_line(row.title) if row else None


def record_feedback(db: Database, subscriber_id: int, paper_id: int, signal: int,
                    now: datetime | None = None) -> None:
    """Upsert one 'more like this' (+1) or 'less like this' (-1); the last click wins."""
    if signal not in (1, -1):
        raise ValueError("signal must be +1 or -1")
    now = now or utcnow()
    for attempt in range(2):
        try:
            with db.session() as s:
                row = s.scalars(select(Feedback).where(Feedback.subscriber_id == subscriber_id,
                                                       Feedback.paper_id == paper_id)).first()
                if row is None:
                    s.add(Feedback(subscriber_id=subscriber_id, paper_id=paper_id, signal=signal,
                                   created_at=now))
                else:
                    row.signal, row.created_at = signal, now
            return
        except IntegrityError:  # a double click raced us to the insert
            if attempt:
                raise


@dataclass(frozen=True)
class Rated:
    """A paper the subscriber marked, as the preferences page lists it."""

    paper_id: int
    title: str
    url: str
    signal: int  # +1 more like this, -1 less like this
    at: datetime


def rated_papers(db: Database, subscriber_id: int) -> list[Rated]:
    """The papers the subscriber marked "more / less like this", latest click first (their seeded
    papers are listed apart, `seeds.seeded`)."""
    with db.session() as s:
        rows = s.scalars(select(Feedback).where(Feedback.subscriber_id == subscriber_id,
                                                Feedback.origin == "click")
                         .order_by(Feedback.created_at.desc(), Feedback.id.desc())).all()
        marks = [(r.paper_id, r.signal, r.created_at) for r in rows]
        papers = paper_store.by_ids(s, [pid for pid, _, _ in marks])
    return [Rated(pid, one_line(papers[pid].title), paper_url(papers[pid]), signal, at)
            for pid, signal, at in marks if pid in papers]


def undo_feedback(db: Database, subscriber_id: int, paper_id: int) -> bool:
    """Forget the subscriber's mark on one paper (their next ranking no longer uses it); False if there
    was none."""
    with db.session() as s:
        gone = s.execute(delete(Feedback).where(Feedback.subscriber_id == subscriber_id,
                                                Feedback.paper_id == paper_id, Feedback.origin == "click"))
        return bool(gone.rowcount)

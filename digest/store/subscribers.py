"""Reading subscribers as records: the one loader (topics and feedback in two IN queries), the one
"mailable" rule in SQL, and the one suppression lookup."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.records import Subscriber, SubscriberStatus
from digest.store.db import among
from digest.store.models import Feedback, Suppression, Topic
from digest.store.models import Subscriber as SubscriberRow
from digest.store.subscriber_rows import COLUMNS, followed, record, split, weights

CHUNK = 5000  # ids per IN (...) list


def mailable(now: datetime) -> ColumnElement[bool]:
    """SQL form of `records.Subscriber.mailable`: active, or a pause that has ended."""
    return or_(SubscriberRow.status == SubscriberStatus.ACTIVE,
               (SubscriberRow.status == SubscriberStatus.PAUSED) & (SubscriberRow.paused_until <= now))


# What a record holds of a subscriber row, read as plain rows (no ORM objects to build and track:
# planning reads 100,000 of them).
_COLUMNS = tuple(getattr(SubscriberRow, c) for c in COLUMNS)


def query() -> Select:
    """All subscribers, in id order; narrow it with `.where(...)` and pass it to `load`."""
    return select(*_COLUMNS).order_by(SubscriberRow.id)


def load(session: Session, q: Select) -> list[Subscriber]:
    """The subscribers `q` selects, as records with their topics, exclusions and feedback."""
    c = session.connection()  # Core rows: no ORM result machinery (planning reads 100,000)
    rows = list(c.execute(q))
    if not rows:
        return []
    ids = [r.id for r in rows]
    topics: dict[int, list] = {i: [] for i in ids}
    feedback: dict[int, tuple[list[int], list[int]]] = {i: ([], []) for i in ids}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        for t in c.execute(select(Topic.subscriber_id, Topic.phrase, Topic.kind, Topic.weight)
                           .where(among(Topic.subscriber_id, chunk)).order_by(Topic.id)):
            topics[t.subscriber_id].append(t)
        for sid, pid, signal in c.execute(
            select(Feedback.subscriber_id, Feedback.paper_id, Feedback.signal)
            .where(among(Feedback.subscriber_id, chunk)).order_by(Feedback.id)
        ):
            feedback[sid][0 if signal > 0 else 1].append(pid)
    return [record(r, *split(topics[r.id]), *feedback[r.id], authors=followed(topics[r.id]),
                   weights=weights(topics[r.id])) for r in rows]


def by_ids(session: Session, ids: Iterable[int]) -> dict[int, Subscriber]:
    wanted = sorted(set(ids))
    out: dict[int, Subscriber] = {}
    for start in range(0, len(wanted), CHUNK):
        out.update((s.id, s)
                   for s in load(session,
                                 query().where(among(SubscriberRow.id, wanted[start : start + CHUNK]))))
    return out


def by_id(session: Session, subscriber_id: int) -> Subscriber | None:
    return next(iter(load(session, query().where(SubscriberRow.id == subscriber_id))), None)


def by_email(session: Session, email: str) -> Subscriber | None:
    return next(iter(load(session, query().where(SubscriberRow.email == email))), None)


def sealed_addresses(session: Session, ids: Iterable[int]) -> dict[int, str]:
    """The sealed address (a webhook URL) of each subscriber among `ids` that has one (its channel
    opens it)."""
    wanted = sorted(set(ids))
    out: dict[int, str] = {}
    for start in range(0, len(wanted), CHUNK):
        out.update(session.execute(select(SubscriberRow.id, SubscriberRow.webhook_url).where(
            among(SubscriberRow.id, wanted[start : start + CHUNK]),
            SubscriberRow.webhook_url.is_not(None))).all())
    return out


def suppressed(session: Session, emails: Iterable[str]) -> dict[str, str]:
    """The addresses among `emails` that must never be mailed, with the reason each was suppressed."""
    wanted = sorted(set(emails))
    out: dict[str, str] = {}
    for start in range(0, len(wanted), CHUNK):
        out.update(session.execute(select(Suppression.email, Suppression.reason)
                                   .where(among(Suppression.email, wanted[start : start + CHUNK]))).all())
    return out


def mailable_batch(session: Session, now: datetime, *, after_id: int = 0, limit: int = 500,
                   email: str | None = None) -> list[Subscriber]:
    """The next `limit` subscribers (by id, after `after_id`) who may get a digest now."""
    q = query().where(mailable(now), SubscriberRow.id > after_id).limit(limit)
    if email:
        q = q.where(SubscriberRow.email == email)
    return load(session, q)


def count_by_status(session: Session) -> dict[str, int]:
    return dict(session.execute(select(SubscriberRow.status,
                                       func.count()).group_by(SubscriberRow.status)).all())


def row(session: Session, *, email: str | None = None,
        subscriber_id: int | None = None) -> SubscriberRow | None:
    """The row (for changing it), found by address or by id."""
    q = select(SubscriberRow)
    q = q.where(SubscriberRow.email
                == email) if email is not None else q.where(SubscriberRow.id == subscriber_id)
    return session.scalars(q).first()


def record_of(row: SubscriberRow) -> Subscriber:
    """The record of a row read or written in this session (topics from the row, no feedback)."""
    return record(row, *split(row.topics), authors=followed(row.topics), weights=weights(row.topics))


def suppression(session: Session, email: str) -> str | None:
    """Why this address must never be mailed (unsubscribed, hard_bounce, ...), or None."""
    return suppressed(session, [email]).get(email)


def suppress(session: Session, email: str, reason: str, detail: str | None, now: datetime) -> bool:
    """Suppress an address (the first reason stays); False if it already was, or a racing writer got
    there first."""
    if suppression(session, email) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(Suppression(email=email, reason=reason, detail=detail, created_at=now))
    except IntegrityError:
        return False
    return True


def lift_unsubscribe(session: Session, email: str) -> None:
    """A fresh, confirmed subscription lifts an unsubscribe; bounces and complaints stay."""
    row = session.get(Suppression, email)
    if row is not None and row.reason == "unsubscribed":
        session.delete(row)


def suppression_rows(session: Session,
                     email: str | None = None) -> list[tuple[str, str, str | None, datetime]]:
    """(address, reason, detail, since) of every suppression (of `email` only, when given), oldest first."""
    q = select(Suppression.email, Suppression.reason, Suppression.detail,
               Suppression.created_at).order_by(Suppression.created_at, Suppression.email)
    if email is not None:
        q = q.where(Suppression.email == email)
    return [tuple(r) for r in session.execute(q)]


def count_suppressed(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Suppression)) or 0


def unsuppress(session: Session, email: str) -> bool:
    """Lift a suppression (the admin's decision: `digest suppressions lift`); False if there was none."""
    row = session.get(Suppression, email)
    if row is None:
        return False
    session.delete(row)
    return True

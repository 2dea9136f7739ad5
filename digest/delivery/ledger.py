"""The delivery ledger: the only code that writes `deliveries` and `delivery_items`.

One row per (subscriber, period), whatever happens to it; the unique key makes a second planner or
a second run a no-op. A row goes

    planned | retry (due) | sending (lease ran out) --claim--> sending (worker_id, lease_expires_at)
    sending --finish--> sent | retry | failed | suppressed
            --release--> planned (never tried) or retry, due at once

Every call is one short transaction and works on many rows at once (`write` many editions, `claim`
many deliveries, `finish` many outcomes), so a run of 100,000 editions costs a few statements per
batch, not a flush per row. Leases are on the real clock; `now` only decides which retries are due.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import ColumnElement, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from digest.lazy import lazy
from digest.records import DeliveryStatus, Edition, LastEdition, Pick, utcnow
from digest.store.db import Database, among
from digest.store.models import Delivery, DeliveryItem

# the writers' SQL and message ids: what only planning and sending use (`digest status` starts without)
bulk_sql = lazy("digest.delivery.bulk_sql")
message = lazy("digest.mail.message")

S = DeliveryStatus
LEASE = timedelta(minutes=10)
CHUNK = 5000  # ids per IN (...) list
PICK, TRENDING = "pick", "trending"


# ------------------------------------------------------------------------------------------ writing


def write(db: Database, editions: Sequence[Edition], domain: str) -> tuple[list[Edition], int]:
    """Store planned editions and their items, in bulk, in one transaction.

    An edition whose (subscriber, period) is already in the ledger is left out (another planner got
    there first). A quiet edition (`status` QUIET, with its `note`) is written with
    no items: no sender ever takes it, and its papers stay unsent, so the next edition can have them
    (`history` starts that one's window at the last edition that was not skipped). Returns the editions
    written, with their ids and Message-IDs, and how many were
    already there.
    """
    if not editions:
        return [], 0
    with db.session() as s:
        bulk_sql.lock_planners(s)
        ids = bulk_sql.insert_new_deliveries(s, [_delivery_row(e) for e in editions])
        written = [replace(e, id=ids[e.subscriber_id],
                           message_id=message.make_message_id(ids[e.subscriber_id], e.period, domain))
                   for e in editions if e.subscriber_id in ids]
        items = [item for e in written for item in _item_rows(e)]
        if written:  # Core executemany statements: no ORM bookkeeping per row
            table = Delivery.__table__
            s.execute(update(table).where(table.c.id == bindparam("did")).values(message_id=bindparam("mid")),
                      [{"did": e.id, "mid": e.message_id} for e in written])
        if items:
            bulk_sql.insert_items(s, items)
    return written, len(editions) - len(written)


def _delivery_row(e: Edition) -> dict:
    """A planned edition's new `deliveries` row (its Message-ID is set once its id is known)."""
    return {"subscriber_id": e.subscriber_id, "period": e.period, "email": e.email,
            "status": S.QUIET if e.status == S.QUIET else S.PLANNED, "note": e.note,
            "message_id": "", "window_start": e.window_start, "window_end": e.window_end,
            "planned_at": e.planned_at, "attempts": 0}


def _item_rows(e: Edition) -> list[tuple]:
    ranked = [(p, PICK) for p in e.picks] + [(p, TRENDING) for p in e.trending]
    return [(e.id, e.subscriber_id, p.paper_id, i, float(p.score), kind, p.topic, p.why)
            for i, (p, kind) in enumerate(ranked, 1)]


# ----------------------------------------------------------------------------------------- claiming


def due_clause(now: datetime, worker: str | None = None) -> ColumnElement[bool]:
    """Deliveries a sender may take now: planned, a retry due at `now`, or a lease run out (on the real
    clock) that is not this worker's own."""
    expired = (Delivery.status == S.SENDING) & (Delivery.lease_expires_at < utcnow())
    if worker is not None:
        expired &= or_(Delivery.worker_id.is_(None), Delivery.worker_id != worker)
    return or_(Delivery.status == S.PLANNED, (Delivery.status == S.RETRY) & (Delivery.next_attempt_at <= now),
               expired)


def claim(db: Database, worker: str, now: datetime, limit: int, email: str | None = None,
          lease: timedelta = LEASE) -> list[int]:
    """Atomically take up to `limit` due deliveries (`FOR UPDATE SKIP LOCKED` on PostgreSQL); [] only
    when none is due, never because another sender took the ones this claim saw first."""
    due = due_clause(now, worker)
    # No ORDER BY: sorting would read every due row of a 100,000-edition run at each claim; each index
    # of the OR already yields its rows in a useful order (planned ones by id).
    pick = select(Delivery.id).where(due).limit(limit).with_for_update(skip_locked=True)
    if email:
        pick = pick.where(Delivery.email == email)
    with db.session() as s:
        while ids := list(s.scalars(pick)):
            got = s.execute(
                update(Delivery).where(Delivery.id.in_(ids), due)
                .values(status=S.SENDING, worker_id=worker, lease_expires_at=utcnow() + lease)
                .returning(Delivery.id)
            ).scalars().all()
            if got:
                return sorted(got)
            # SQLite has no row locks: another sender took every one of these between the two statements.
            # Nothing claimed is not "nothing due": look again (this transaction now holds the write lock).
    return []


_T = Delivery.__table__  # per-message statements go to the table itself (Core: no ORM bulk-update machinery)


def _mine(delivery_id: int, worker: str) -> ColumnElement[bool]:
    return (_T.c.id == delivery_id) & (_T.c.worker_id == worker) & (_T.c.status == S.SENDING)


def hold(db: Database, delivery_id: int, worker: str, lease: timedelta = LEASE) -> bool:
    """Renew this worker's lease just before sending; False if another worker has taken it over."""
    with db.session() as s:
        return s.execute(update(_T).where(_mine(delivery_id, worker))
                         .values(lease_expires_at=utcnow() + lease)).rowcount == 1


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed delivery. `bounce` (keyword arguments for the bounce recorder) is
    recorded in the same transaction as the outcome."""

    delivery_id: int
    status: DeliveryStatus
    attempts: int | None = None  # None: unchanged (nothing was tried)
    error: str | None = None
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    subject: str | None = None
    bounce: dict | None = None


OnBounce = Callable[[Session, Outcome], None]


def finish(db: Database, worker: str, outcomes: Sequence[Outcome],
           on_bounce: OnBounce | None = None) -> list[int]:
    """Record outcomes for deliveries this worker still holds, in one transaction; returns the ids
    recorded (a delivery another worker has taken over since is left alone).

    Without a bounce to record, the UPDATEs go through a plain connection: an ORM session costs as
    much again as the statement (a sender records each message on its own, before its next one)."""
    done: list[int] = []
    if on_bounce is not None and any(o.bounce for o in outcomes):
        with db.session() as s:
            for o in outcomes:
                if s.execute(*_finish_call(worker, o)).rowcount:
                    done.append(o.delivery_id)
                    if o.bounce:
                        on_bounce(s, o)
        return done
    if db.engine.dialect.name == "postgresql":  # the group in one statement (bulk_sql)
        return bulk_sql.finish_outcomes(db.engine, worker, [
            (o.delivery_id, o.status, o.error, o.attempts, o.next_attempt_at, o.sent_at, o.subject)
            for o in outcomes])
    with db.engine.begin() as c:
        done += [o.delivery_id for o in outcomes if c.execute(*_finish_call(worker, o)).rowcount]
    return done


def _finish_call(worker: str, o: Outcome) -> tuple:
    """(statement, parameters) that record outcome `o`."""
    given = tuple(key for key in _OPTIONAL if getattr(o, key) is not None)
    return _finish_statement(given), {"b_id": o.delivery_id, "b_worker": worker, "b_status": o.status,
                                      "b_error": o.error, **{f"b_{key}": getattr(o, key) for key in given}}


# an outcome's values, None: left as they are
_OPTIONAL = ("attempts", "next_attempt_at", "sent_at", "subject")


@lru_cache(maxsize=16)
def _finish_statement(given: tuple[str, ...]):
    """The UPDATE that records an outcome setting these of its optional values, made once (building a
    statement per message cost more than running it)."""
    return (update(_T).where((_T.c.id == bindparam("b_id")) & (_T.c.worker_id == bindparam("b_worker"))
                             & (_T.c.status == S.SENDING))
            .values(status=bindparam("b_status"), worker_id=None, lease_expires_at=None,
                    last_error=bindparam("b_error"),
                    **{key: bindparam(f"b_{key}") for key in given}))


def _released(*where: ColumnElement[bool]):
    """The UPDATE that hands `sending` rows back to the ledger, due at once, attempts unchanged."""
    return (update(Delivery).where(Delivery.status == S.SENDING, *where)
            .values(status=case((Delivery.attempts == 0, S.PLANNED), else_=S.RETRY), next_attempt_at=utcnow(),
                    worker_id=None, lease_expires_at=None))


def release(db: Database, worker: str, ids: Iterable[int] | None = None, keep: Iterable[int] = ()) -> int:
    """Hand back what `worker` holds (only `ids`, when given), due at once, attempts unchanged (nothing
    was tried), except `keep` (outcome unknown: left to its lease). Returns how many were handed back."""
    where = [Delivery.worker_id == worker]
    if ids is not None:
        if not (ids := list(ids)):
            return 0
        where.append(Delivery.id.in_(ids))
    if keep := list(keep):
        where.append(Delivery.id.not_in(keep))
    with db.session() as s:
        return s.execute(_released(*where)).rowcount


def note_errors(db: Database, worker: str, errors: dict[int, str]) -> None:
    """Set the last error of deliveries `worker` still holds (what the relay said of the ones it
    refused, before they are handed back), leaving everything else as it is."""
    if not errors:
        return
    with db.engine.begin() as c:
        c.execute(update(_T).where((_T.c.id == bindparam("b_id")) & (_T.c.worker_id == worker)
                                   & (_T.c.status == S.SENDING)).values(last_error=bindparam("b_error")),
                  [{"b_id": did, "b_error": error[:500]} for did, error in errors.items()])


def release_held_by(db: Database, workers: Iterable[str]) -> int:
    """Hand back everything these workers hold (they are gone: `digest deliveries release`), due at once,
    attempts unchanged; returns how many."""
    if not (workers := sorted(set(workers))):
        return 0
    with db.session() as s:
        return s.execute(_released(Delivery.worker_id.in_(workers))).rowcount


def holders(db: Database) -> list[dict]:
    """Who holds leases now: each worker with how many deliveries it holds and until when (its
    latest lease), oldest first."""
    with db.session() as s:
        rows = s.execute(select(Delivery.worker_id, func.count(), func.min(Delivery.lease_expires_at),
                                func.max(Delivery.lease_expires_at))
                         .where(Delivery.status == S.SENDING).group_by(Delivery.worker_id)
                         .order_by(func.min(Delivery.lease_expires_at))).all()
    return [{"worker": w or "", "deliveries": n, "first_until": first, "until": last}
            for w, n, first, last in rows]


def unsent(db: Database, statuses: Sequence[DeliveryStatus], email: str | None = None) -> list[tuple]:
    """(id, subscriber id, period, status, next attempt) of the deliveries in `statuses` (of `email`
    only, when given)."""
    q = select(Delivery.id, Delivery.subscriber_id, Delivery.period, Delivery.status,
               Delivery.next_attempt_at).where(
        Delivery.status.in_([str(x) for x in statuses])).order_by(Delivery.id)
    if email:
        q = q.where(Delivery.email == email)
    with db.session() as s:
        return [tuple(r) for r in s.execute(q)]


def due_now(db: Database, ids: Sequence[int], now: datetime) -> int:
    """Make these failed or waiting deliveries due at `now` (`digest deliveries retry`): each gets one
    more try, its attempts so far unchanged; returns how many."""
    done = 0
    with db.session() as s:
        for start in range(0, len(ids), CHUNK):
            done += s.execute(update(Delivery).where(among(Delivery.id, list(ids[start : start + CHUNK])),
                                                     Delivery.status.in_([S.FAILED, S.RETRY]))
                              .values(status=S.RETRY, next_attempt_at=now)).rowcount
    return done


def release_expired(db: Database) -> int:
    """Hand back every delivery whose lease has run out (its sender died); returns how many."""
    with db.session() as s:
        return s.execute(_released(Delivery.lease_expires_at < utcnow())).rowcount


# ------------------------------------------------------------------------------------------ reading


def read(db: Database, ids: Iterable[int]) -> list[Edition]:
    """The editions with these delivery ids, with their picks and trending items, in id order."""
    ids = sorted(set(ids))
    with db.session() as s:
        c = s.connection()  # Core rows: the ORM's result machinery cost a third of reading
        rows = [r for start in range(0, len(ids), CHUNK)
                for r in c.execute(select(*_EDITION_COLUMNS)
                                   .where(among(Delivery.id, ids[start : start + CHUNK])))]
        return _editions(s, rows)


# What an Edition carries of its delivery row (read as plain rows: no ORM objects to build and track).
_EDITION_COLUMNS = (Delivery.id, Delivery.subscriber_id, Delivery.email, Delivery.period,
                    Delivery.window_start,
                    Delivery.window_end, Delivery.planned_at, Delivery.message_id, Delivery.status,
                    Delivery.attempts, Delivery.subject, Delivery.sent_at, Delivery.note)
_ITEM_COLUMNS = (DeliveryItem.delivery_id, DeliveryItem.paper_id, DeliveryItem.score, DeliveryItem.topic,
                 DeliveryItem.why, DeliveryItem.kind)


def _editions(s: Session, rows: Sequence) -> list[Edition]:
    ids = [r.id for r in rows]
    items: dict[int, tuple[list[Pick], list[Pick]]] = {i: ([], []) for i in ids}
    c = s.connection()
    for start in range(0, len(ids), CHUNK):
        for did, paper_id, score, topic, why, kind in c.execute(
                select(*_ITEM_COLUMNS).where(among(DeliveryItem.delivery_id, ids[start : start + CHUNK]))
                .order_by(DeliveryItem.delivery_id, DeliveryItem.rank)):
            items[did][0 if kind == PICK
                       else 1].append(Pick(paper_id=paper_id, score=score, topic=topic, why=why))
    return [Edition(subscriber_id=r.subscriber_id, email=r.email, period=r.period,
                    window_start=r.window_start,
                    window_end=r.window_end, planned_at=r.planned_at, picks=tuple(items[r.id][0]),
                    trending=tuple(items[r.id][1]), id=r.id, message_id=r.message_id, status=S(r.status),
                    attempts=r.attempts, subject=r.subject, sent_at=r.sent_at, note=r.note)
            for r in sorted(rows, key=lambda r: r.id)]


def edition_of(db: Database, subscriber_id: int, delivery_id: int) -> Edition | None:
    """One subscriber's edition (the archive's "view in browser"); None if it is not theirs."""
    found = read(db, [delivery_id])
    return found[0] if found and found[0].subscriber_id == subscriber_id else None


def recent(db: Database, subscriber_id: int, limit: int = 10,
           status: DeliveryStatus | None = None) -> list[Edition]:
    """A subscriber's latest editions, newest first (only those in `status`, when given)."""
    q = select(*_EDITION_COLUMNS).where(Delivery.subscriber_id == subscriber_id)
    if status is not None:
        q = q.where(Delivery.status == status).order_by(Delivery.sent_at.desc(), Delivery.id.desc())
    else:
        q = q.order_by(Delivery.id.desc())
    with db.session() as s:
        rows = list(s.execute(q.limit(limit)))
        by_id = {e.id: e for e in _editions(s, rows)}
        return [by_id[r.id] for r in rows]


@dataclass(frozen=True)
class History:
    """What planning needs to know of a subscriber's past editions."""

    last: LastEdition | None = None  # the newest edition, whatever its status: due-ness is judged against it
    # where the newest edition that did not fail and was not skipped stopped looking: a quiet day's
    # papers roll over into the next edition's window
    window_end: datetime | None = None


def history(db: Database, subscriber_ids: Sequence[int]) -> dict[int, History]:
    """Each subscriber's `History` (subscribers without an edition are left out)."""
    ids = list(subscriber_ids)
    if not ids:
        return {}
    other = aliased(Delivery)
    newest = select(func.max(other.planned_at)).where(other.subscriber_id == Delivery.subscriber_id)
    with db.session() as s:
        ends = dict(s.execute(
            select(Delivery.subscriber_id, func.max(Delivery.window_end))
            .where(among(Delivery.subscriber_id, ids), Delivery.status.not_in([S.FAILED, S.QUIET]))
            .group_by(Delivery.subscriber_id)).all())
        last = {sid: LastEdition(period, at, (note or "quiet") if status == S.QUIET else None)
                for sid, period, at, status, note in s.execute(
            select(Delivery.subscriber_id, Delivery.period, Delivery.planned_at, Delivery.status,
                   Delivery.note)
            .where(among(Delivery.subscriber_id, ids), Delivery.planned_at == newest.scalar_subquery()))}
    return {sid: History(last.get(sid), ends.get(sid)) for sid in set(ends) | set(last)}


def existing(db: Database, periods: dict[int, str]) -> set[tuple[int, str]]:
    """Which of these (subscriber, period) pairs already have an edition."""
    if not periods:
        return set()
    with db.session() as s:
        return set(s.execute(
            select(Delivery.subscriber_id, Delivery.period)
            .where(among(Delivery.subscriber_id, list(periods)),
                   among(Delivery.period, set(periods.values())))
        ).all())


def sent_papers(db: Database, subscriber_ids: Sequence[int], paper_ids: Sequence[int]) -> dict[int, set[int]]:
    """Which of `paper_ids` each subscriber has had in an edition already (never sent twice).

    Reads each subscriber's items from the lowest of `paper_ids` up (candidates are recent papers, so
    that is their recent items) through the (subscriber, paper) index, and keeps those asked for.
    """
    out: dict[int, set[int]] = {i: set() for i in subscriber_ids}
    if not subscriber_ids or not paper_ids:
        return out
    wanted, ids = set(paper_ids), list(subscriber_ids)
    q = select(DeliveryItem.subscriber_id, DeliveryItem.paper_id).where(DeliveryItem.paper_id >= min(wanted))
    with db.session() as s:
        for start in range(0, len(ids), CHUNK):
            for sid, pid in s.execute(q.where(among(DeliveryItem.subscriber_id, ids[start : start + CHUNK]))):
                if pid in wanted:
                    out[sid].add(pid)
    return out


def by_message_ids(db: Database, message_ids: Iterable[str]) -> dict[str, tuple[int, str]]:
    """Message-ID -> (delivery id, recipient address), for the bounce reports that quote them."""
    ids = sorted(set(message_ids))
    if not ids:
        return {}
    with db.session() as s:
        return {mid: (did, addr) for mid, did, addr in s.execute(
            select(Delivery.message_id, Delivery.id, Delivery.email).where(among(Delivery.message_id, ids)))}


def due_count(db: Database, now: datetime, email: str | None = None) -> int:
    """How many deliveries a `send` now would take (for its progress bar)."""
    q = select(func.count()).select_from(Delivery).where(due_clause(now))
    if email:
        q = q.where(Delivery.email == email)
    with db.session() as s:
        return s.scalar(q) or 0


def summary(db: Database, failures: int = 5) -> dict:
    """Counts by status, the last send and the latest failures (what `digest status` shows)."""
    with db.session() as s:
        failed = s.scalars(select(Delivery).where(Delivery.status == S.FAILED).order_by(Delivery.id.desc())
                           .limit(failures))
        return {
            "deliveries": dict(s.execute(select(Delivery.status,
                                                func.count()).group_by(Delivery.status)).all()),
            "last_sent_at": s.scalar(select(func.max(Delivery.sent_at))),
            "recent_failures": [{"email": f.email, "period": f.period, "error": f.last_error}
                                for f in failed],
        }

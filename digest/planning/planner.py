"""Planning: who gets an edition this period, and which papers (ranked in one batch) go in it.

Planning writes one ledger row (`deliveries`) per subscriber and period; the unique constraint makes
a second planner, or a second run, a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, selectinload

from digest import ranking
from digest.config import Settings
from digest.mail.message import make_message_id, sender_domain
from digest.planning.schedule import Due, check, period_for  # noqa: F401 (period_for: re-exported)
from digest.ranking import semantic
from digest.records import LastEdition, Paper, Pick, Profile, Schedule, iso, utcnow
from digest.render.compose import subject_line
from digest.store import vectors
from digest.store.db import Database
from digest.store.models import Delivery, DeliveryItem, Feedback, Subscriber, Suppression
from digest.store.models import Paper as PaperRow
from digest.subscriptions import subscribers

log = logging.getLogger("digest.planning.planner")

BATCH = 500  # subscribers ranked per batch: memory stays flat as the list grows


# ---------------------------------------------------------------------------------------- papers


def to_paper(row: PaperRow) -> Paper:
    return Paper(
        id=row.id, title=row.title, abstract=row.abstract or "", arxiv_id=row.arxiv_id,
        authors=list(row.authors or []), url=row.url, pdf_url=row.pdf_url, code_url=row.code_url,
        project_url=row.project_url, thumbnail_url=row.thumbnail_url, upvotes=row.upvotes or 0,
        num_comments=row.num_comments or 0, github_stars=row.github_stars, ai_summary=row.ai_summary,
        categories=list(row.categories or []), published_at=row.published_at, first_seen_at=row.first_seen_at,
    )


def load_papers(session: Session, *, seen_after: datetime | None = None, ids: Sequence[int] = ()) -> list[Paper]:
    q = select(PaperRow).where(PaperRow.withdrawn_at.is_(None))
    if ids:
        q = select(PaperRow).where(PaperRow.id.in_(list(ids)))
    elif seen_after is not None:
        q = q.where(PaperRow.first_seen_at > seen_after)
    return [to_paper(r) for r in session.scalars(q.order_by(PaperRow.id))]


# --------------------------------------------------------------------------------------- periods


# `period_for` (local date, or ISO week for weekly) lives in digest.planning.schedule with the rest of due-ness.


# -------------------------------------------------------------------------------------- selection


@dataclass
class Selection:
    picks: list[Pick]
    trending: list[Pick]
    window_start: datetime


def select_papers(session: Session, settings: Settings, subs: Sequence[Subscriber], now: datetime,
                  ) -> tuple[dict[int, Selection], dict[int, Paper]]:
    """Rank the papers new to each subscriber: index the candidates once, score all in a batch."""
    cfg = settings.digest
    floor = now - timedelta(days=cfg.max_lookback_days)
    first = now - timedelta(days=cfg.first_edition_days)
    ids = [s.id for s in subs]
    last_end = dict(session.execute(
        select(Delivery.subscriber_id, func.max(Delivery.window_end))
        .where(Delivery.subscriber_id.in_(ids), Delivery.status != "failed")
        .group_by(Delivery.subscriber_id)
    ).all()) if ids else {}
    starts = {s.id: max(floor, last_end.get(s.id) or first) for s in subs}
    if not subs:
        return {}, {}
    papers = load_papers(session, seen_after=min(starts.values()))
    by_id = {p.id: p for p in papers}
    sent: dict[int, set[int]] = {i: set() for i in ids}
    feedback: dict[int, tuple[list[int], list[int]]] = {i: ([], []) for i in ids}
    if papers:
        for sid, pid in session.execute(
            select(DeliveryItem.subscriber_id, DeliveryItem.paper_id).where(
                DeliveryItem.subscriber_id.in_(ids), DeliveryItem.paper_id.in_(list(by_id))
            )
        ):
            sent[sid].add(pid)
    for sid, pid, signal in session.execute(
        select(Feedback.subscriber_id, Feedback.paper_id, Feedback.signal).where(Feedback.subscriber_id.in_(ids))
    ):
        feedback[sid][0 if signal > 0 else 1].append(pid)
    extra = {pid for like, dislike in feedback.values() for pid in like + dislike} - set(by_id)
    pool = papers + (load_papers(session, ids=sorted(extra)) if extra else [])

    candidates = {
        s.id: [p.id for p in papers if p.first_seen_at and p.first_seen_at > starts[s.id] and p.id not in sent[s.id]]
        for s in subs
    }
    profiles = [
        Profile(
            subscriber_id=s.id,
            topics=[t.phrase for t in s.topics if t.kind == "include"],
            excludes=[t.phrase for t in s.topics if t.kind == "exclude"],
            max_items=s.max_items or cfg.max_items,
            liked=feedback[s.id][0],
            disliked=feedback[s.id][1],
        )
        for s in subs
    ]
    vecs = None
    if semantic.wanted(cfg.ranker):
        try:
            vecs = vectors.for_papers(session, pool)  # stored by plan() beforehand; reads only
        except Exception as err:  # noqa: BLE001 - the digest still goes out, ranked on words alone
            log.warning("planner: paper vectors unavailable (%s); ranking lexically this time", err)
    picks = ranking.rank(pool, profiles, candidates=candidates, now=now, vectors=vecs)
    # "Also trending" means upvoted by the community: listings without any upvotes never fill it
    upvoted = [p for p in papers if p.upvotes > 0]
    hot = ranking.trending(upvoted, cfg.trending_items + cfg.max_items, now=now) if cfg.trending_items else []
    out: dict[int, Selection] = {}
    for s in subs:
        mine = picks.get(s.id, [])
        taken = {p.paper_id for p in mine} | sent[s.id]
        allowed = set(candidates[s.id])
        extra_hot = [t for t in hot if t.paper_id not in taken and t.paper_id in allowed][: cfg.trending_items]
        out[s.id] = Selection(picks=mine, trending=extra_hot if mine and any(p.topic for p in mine) else [],
                              window_start=starts[s.id])
    return out, {p.id: p for p in pool}


# ---------------------------------------------------------------------------------------- planning

# PostgreSQL advisory lock (this key, the schema's hash): one planner per schema writes a batch at a time.
PLANNER_LOCK = 0x64696765


@dataclass
class PlanReport:
    planned: int = 0
    skipped: int = 0  # nothing new for them (or a schedule that cannot be read)
    already: int = 0  # an edition for this period exists already
    suppressed: int = 0
    not_due: int = 0  # with due_only: this period's slot has not come, or the period has none
    rows: list[dict] = field(default_factory=list)  # with dry_run: who would get what

    def summary(self) -> str:
        return (f"planned {self.planned}, already {self.already}, not due {self.not_due}, "
                f"nothing new {self.skipped}, suppressed {self.suppressed}")


def _due_subscribers(session: Session, now: datetime, email: str | None, after_id: int, limit: int):
    q = (
        select(Subscriber).options(selectinload(Subscriber.topics))
        .where(subscribers.mailable(now))
        .where(Subscriber.id > after_id).order_by(Subscriber.id).limit(limit)
    )
    if email:
        q = q.where(Subscriber.email == email)
    return session.scalars(q).all()


def schedule_of(sub: Subscriber) -> Schedule:
    return Schedule(frequency=sub.frequency, hour=sub.hour, timezone=sub.timezone, weekday=sub.weekday)


def last_editions(session: Session, ids: Sequence[int]) -> dict[int, LastEdition]:
    """Each subscriber's newest edition (whatever its status): what due-ness is judged against."""
    if not ids:
        return {}
    other = aliased(Delivery)
    newest = select(func.max(other.planned_at)).where(other.subscriber_id == Delivery.subscriber_id)
    rows = session.execute(
        select(Delivery.subscriber_id, Delivery.period, Delivery.planned_at)
        .where(Delivery.subscriber_id.in_(list(ids)), Delivery.planned_at == newest.scalar_subquery())
    )
    return {sid: LastEdition(period, at) for sid, period, at in rows}


def _check(sub: Subscriber, now: datetime, last: LastEdition | None) -> Due | None:
    """Due-ness, or None (logged) for a schedule that cannot be read: one bad row never stops a run."""
    try:
        return check(schedule_of(sub), now, last)
    except (ValueError, KeyError) as err:  # an unknown time zone (ZoneInfoNotFoundError) or frequency
        log.warning("subscriber %s: unreadable schedule (%s %s %s): %s", sub.id, sub.frequency, sub.hour,
                    sub.timezone, err)
        return None


def plan(db: Database, settings: Settings, *, now: datetime | None = None, email: str | None = None,
         dry_run: bool = False, due_only: bool = False) -> PlanReport:
    """Create this period's edition for every active subscriber who has something new.

    Without `due_only` (`digest send`), everyone whose current period has no edition yet gets one now,
    whatever their hour or day. With `due_only` (the scheduler), only subscribers whose slot has come
    (`digest.planning.schedule.check`). Both are idempotent through the unique (subscriber, period) key.
    With `dry_run`, nothing is written: `report.rows` says who would get how many papers.
    """
    now = now or utcnow()
    report = PlanReport()
    domain = sender_domain(settings.mail.from_address)
    if not dry_run and semantic.wanted(settings.digest.ranker):
        try:  # embed the candidate window's papers now, outside the planning transactions
            vectors.ensure(db, since=now - timedelta(days=settings.digest.max_lookback_days))
        except Exception as err:  # noqa: BLE001 - select_papers embeds in memory or ranks lexically
            log.warning("planner: could not store paper vectors (%s)", err)
    after = 0
    while True:
        with db.session() as s:
            if not dry_run and s.get_bind().dialect.name == "postgresql":
                s.execute(select(func.pg_advisory_xact_lock(PLANNER_LOCK, func.hashtext(func.current_schema()))))
            subs = _due_subscribers(s, now, email, after, BATCH)
            if not subs:
                break
            after = subs[-1].id
            suppressed = set(s.scalars(select(Suppression.email).where(Suppression.email.in_([x.email for x in subs]))))
            last = last_editions(s, [x.id for x in subs])
            dues = {x.id: _check(x, now, last.get(x.id)) for x in subs}
            periods = {sid: d.period for sid, d in dues.items() if d is not None}
            existing = set(s.execute(
                select(Delivery.subscriber_id, Delivery.period)
                .where(Delivery.subscriber_id.in_(list(periods)), Delivery.period.in_(set(periods.values())))
            ).all())
            todo = []
            for x in subs:
                due = dues[x.id]
                if due is None:
                    report.skipped += 1
                elif x.email in suppressed:
                    report.suppressed += 1
                elif (x.id, due.period) in existing:
                    report.already += 1
                elif due_only and not due.due:
                    report.not_due += 1
                else:
                    todo.append(x)
            selections, papers = select_papers(s, settings, todo, now)
            for x in todo:
                sel = selections[x.id]
                if not sel.picks:
                    report.skipped += 1
                    continue
                if dry_run:
                    top = papers[sel.picks[0].paper_id].title
                    report.rows.append({"email": x.email, "period": periods[x.id], "papers": len(sel.picks),
                                        "subject": subject_line(len(sel.picks), top, bool(sel.picks[0].topic))})
                    continue
                try:
                    with s.begin_nested():
                        d = Delivery(subscriber_id=x.id, period=periods[x.id], email=x.email, status="planned",
                                     message_id="", window_start=sel.window_start, window_end=now, planned_at=now)
                        s.add(d)
                        s.flush()
                        d.message_id = make_message_id(d.id, d.period, domain)
                        rows = [(p, "pick") for p in sel.picks] + [(p, "trending") for p in sel.trending]
                        s.add_all(
                            DeliveryItem(delivery_id=d.id, subscriber_id=x.id, paper_id=p.paper_id, rank=i,
                                         score=float(p.score), kind=kind, topic=p.topic, why=p.why)
                            for i, (p, kind) in enumerate(rows, 1)
                        )
                    report.planned += 1
                    log.info("edition planned subscriber=%s period=%s papers=%d", x.id, d.period, len(sel.picks))
                except IntegrityError:  # another planner got there first
                    report.already += 1
    return report


def due_at(db: Database, now: datetime, *, email: str | None = None) -> list[dict]:
    """Every active subscriber at `now`: due or not, for which period, and why. Nothing is written."""
    out: list[dict] = []
    after = 0
    while True:
        with db.session() as s:
            subs = _due_subscribers(s, now, email, after, BATCH)
            if not subs:
                return out
            after = subs[-1].id
            suppressed = set(s.scalars(select(Suppression.email).where(Suppression.email.in_([x.email for x in subs]))))
            last = last_editions(s, [x.id for x in subs])
            for x in subs:
                d = _check(x, now, last.get(x.id))
                row = {"email": x.email, "schedule": schedule_of(x).describe(), "due": bool(d and d.due),
                       "period": d.period if d else None, "reason": d.reason if d else "unreadable schedule",
                       "slot": iso(d.slot) if d else None, "next_at": iso(d.next_at) if d else None,
                       "last_period": last[x.id].period if x.id in last else None}
                if x.email in suppressed:
                    row.update(due=False, reason="suppressed (unsubscribed, bounced or complained)")
                out.append(row)

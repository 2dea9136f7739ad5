"""Planning: who gets an edition this period, and which papers (ranked in one batch) go in it.

Planning writes one ledger row (`deliveries`) per subscriber and period; the unique constraint makes
a second planner, or a second run, a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from digest import ranking
from digest.config import Settings
from digest.db import Database
from digest.mail.message import make_message_id, sender_domain
from digest.models import Delivery, DeliveryItem, Feedback, Subscriber, Suppression
from digest.models import Paper as PaperRow
from digest.render.compose import subject_line
from digest.types import Paper, Pick, Profile

log = logging.getLogger("digest.planner")

BATCH = 500  # subscribers ranked per batch: memory stays flat as the list grows


def utcnow() -> datetime:
    return datetime.now(UTC)


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


def period_for(frequency: str, timezone: str, now: datetime) -> str:
    """The edition a subscriber is in at `now`: their local date, or ISO week for weekly."""
    local = now.astimezone(ZoneInfo(timezone))
    if frequency == "weekly":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.date().isoformat()


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
        select(Delivery.subscriber_id, Delivery.window_end)
        .where(Delivery.subscriber_id.in_(ids), Delivery.status != "failed")
        .order_by(Delivery.window_end)
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
    picks = ranking.rank(pool, profiles, candidates=candidates, now=now)
    hot = ranking.trending(papers, cfg.trending_items + cfg.max_items, now=now) if cfg.trending_items else []
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


@dataclass
class PlanReport:
    planned: int = 0
    skipped: int = 0  # nothing new for them
    already: int = 0  # an edition for this period exists already
    suppressed: int = 0
    rows: list[dict] = field(default_factory=list)  # with dry_run: who would get what


def _due_subscribers(session: Session, now: datetime, email: str | None, after_id: int, limit: int):
    q = (
        select(Subscriber).options(selectinload(Subscriber.topics))
        .where(or_(Subscriber.status == "active",
                   (Subscriber.status == "paused") & (Subscriber.paused_until <= now)))
        .where(Subscriber.id > after_id).order_by(Subscriber.id).limit(limit)
    )
    if email:
        q = q.where(Subscriber.email == email)
    return session.scalars(q).all()


def plan(db: Database, settings: Settings, *, now: datetime | None = None, email: str | None = None,
         dry_run: bool = False) -> PlanReport:
    """Create this period's delivery for every active subscriber who has something new.

    With `dry_run`, nothing is written: `report.rows` says who would get how many papers.
    """
    now = now or utcnow()
    report = PlanReport()
    domain = sender_domain(settings.mail.from_address)
    after = 0
    while True:
        with db.session() as s:
            subs = _due_subscribers(s, now, email, after, BATCH)
            if not subs:
                break
            after = subs[-1].id
            suppressed = set(s.scalars(select(Suppression.email).where(Suppression.email.in_([x.email for x in subs]))))
            periods = {x.id: period_for(x.frequency, x.timezone, now) for x in subs}
            existing = set(s.execute(
                select(Delivery.subscriber_id, Delivery.period).where(Delivery.subscriber_id.in_(list(periods)))
            ).all())
            todo = []
            for x in subs:
                if x.email in suppressed:
                    report.suppressed += 1
                elif (x.id, periods[x.id]) in existing:
                    report.already += 1
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


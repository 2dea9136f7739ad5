"""Planning editions, claiming deliveries, and running rank -> render -> send for a batch.

The delivery ledger (`deliveries`) drives everything: planning writes one row per subscriber and
period (unique), sending claims rows with a lease, and every outcome is written back to the row.
A second `send` finds nothing to do; a crashed one leaves leases that expire and are reclaimed.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from digest import ranking
from digest.config import Settings
from digest.db import Database
from digest.links import Links
from digest.mail.message import Envelope, build_message, make_message_id, sender_domain
from digest.mail.transport import PermanentFailure, TemporaryFailure, Transport
from digest.mail.transport import from_settings as transport_from_settings
from digest.models import Delivery, DeliveryItem, Feedback, Subscriber, Suppression
from digest.models import Paper as PaperRow
from digest.render import Rendered, default_renderer
from digest.render.compose import compose, subject_line
from digest.types import Paper, Pick, Profile

log = logging.getLogger("digest.pipeline")

BATCH = 500  # subscribers ranked, and deliveries claimed, per batch: memory stays flat
LEASE = timedelta(minutes=10)
MAX_ATTEMPTS = 5


def utcnow() -> datetime:
    return datetime.now(UTC)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


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


# ----------------------------------------------------------------------------------------- sending


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    suppressed: int = 0
    skipped: int = 0  # nothing new (from planning)
    errors: list[str] = field(default_factory=list)


def claim(db: Database, worker: str, now: datetime, limit: int, email: str | None = None) -> list[int]:
    """Atomically take up to `limit` deliveries that are due (planned, retry due, or lease expired)."""
    due = or_(
        Delivery.status == "planned",
        (Delivery.status == "retry") & (Delivery.next_attempt_at <= now),
        (Delivery.status == "sending") & (Delivery.lease_expires_at < now),
    )
    pick = select(Delivery.id).where(due).order_by(Delivery.id).limit(limit).with_for_update(skip_locked=True)
    if email:
        pick = pick.where(Delivery.email == email)
    with db.session() as s:
        ids = list(s.scalars(pick))
        if not ids:
            return []
        got = s.execute(
            update(Delivery).where(Delivery.id.in_(ids), due)
            .values(status="sending", worker_id=worker, lease_expires_at=now + LEASE)
            .returning(Delivery.id)
        ).scalars().all()
    return sorted(got)


def _finish(db: Database, delivery_id: int, worker: str, **values) -> None:
    with db.session() as s:
        s.execute(
            update(Delivery).where(Delivery.id == delivery_id, Delivery.worker_id == worker)
            .values(worker_id=None, lease_expires_at=None, **values)
        )


def backoff(attempts: int) -> timedelta:
    return min(timedelta(minutes=5) * 2 ** max(0, attempts - 1), timedelta(hours=6))


@dataclass
class Outgoing:
    delivery_id: int
    subscriber_id: int
    recipient: str
    rendered: Rendered
    message: EmailMessage
    attempts: int


def build_outgoing(db: Database, settings: Settings, ids: Sequence[int], now: datetime) -> tuple[list[Outgoing], list[int]]:
    """Render the claimed deliveries; returns (messages, ids that must be suppressed instead)."""
    links = Links(settings.web.base_url, settings.secret())
    renderer = default_renderer()
    out, blocked = [], []
    with db.session() as s:
        rows = s.scalars(
            select(Delivery).options(selectinload(Delivery.items)).where(Delivery.id.in_(list(ids))).order_by(Delivery.id)
        ).all()
        subs = {x.id: x for x in s.scalars(
            select(Subscriber).options(selectinload(Subscriber.topics))
            .where(Subscriber.id.in_([d.subscriber_id for d in rows]))
        )}
        suppressed = set(s.scalars(select(Suppression.email).where(Suppression.email.in_([d.email for d in rows]))))
        papers = {p.id: p for p in load_papers(s, ids=sorted({i.paper_id for d in rows for i in d.items}))}
        for d in rows:
            sub = subs.get(d.subscriber_id)
            if sub is None or sub.status not in ("active", "paused") or d.email in suppressed:
                blocked.append(d.id)
                continue
            out.append(Outgoing(d.id, sub.id, d.email, *render_delivery(settings, links, renderer, sub, d, papers, now),
                                attempts=d.attempts))
    return out, blocked


def render_delivery(settings: Settings, links: Links, renderer, sub: Subscriber, d: Delivery,
                    papers: dict[int, Paper], now: datetime) -> tuple[Rendered, EmailMessage]:
    def as_pick(i: DeliveryItem) -> Pick:
        return Pick(paper_id=i.paper_id, score=i.score, topic=i.topic, why=i.why)

    content = compose(
        site_name=settings.digest.site_name, email=sub.email, frequency=sub.frequency,
        topics=[t.phrase for t in sub.topics if t.kind == "include"],
        picks=[as_pick(i) for i in d.items if i.kind == "pick" and i.paper_id in papers],
        trending=[as_pick(i) for i in d.items if i.kind == "trending" and i.paper_id in papers],
        papers=papers, when=d.planned_at.astimezone(ZoneInfo(sub.timezone)),
        archive_url=links.archive(sub.id, d.id), prefs_url=links.preferences(sub.id),
        unsubscribe_url=links.unsubscribe(sub.id), excerpt_chars=settings.digest.excerpt_chars,
        feedback=lambda pid, v: links.feedback(sub.id, pid, v),
    )
    rendered = renderer.render(content)
    mail = settings.mail
    message = build_message(
        Envelope(from_address=mail.from_address, to_address=sub.email, to_name=sub.name, subject=rendered.subject,
                 message_id=d.message_id, list_id=mail.list_id, unsubscribe_url=links.unsubscribe(sub.id),
                 unsubscribe_mailto=mail.unsubscribe_mailto, reply_to=mail.reply_to, date=now),
        rendered.text, rendered.html,
    )
    return rendered, message


def send(db: Database, settings: Settings, *, transport: Transport | None = None, now: datetime | None = None,
         email: str | None = None, worker: str | None = None, batch: int = 50,
         progress: Callable[[int], None] | None = None) -> SendReport:
    """Send every due delivery in the ledger, one SMTP connection for the run."""
    now = now or utcnow()
    worker = worker or worker_name()
    transport = transport or transport_from_settings(settings)
    sender = sender_address(settings)
    report = SendReport()
    try:
        transport.open()
    except (TemporaryFailure, PermanentFailure) as err:
        report.errors.append(str(err))
        return report
    try:
        while ids := claim(db, worker, now, batch, email):
            outgoing, blocked = build_outgoing(db, settings, ids, now)
            for did in blocked:
                _finish(db, did, worker, status="suppressed")
                report.suppressed += 1
            for o in outgoing:
                _deliver(db, transport, sender, worker, o, report)
                if progress:
                    progress(1)
    finally:
        transport.close()
    return report


def _deliver(db: Database, transport: Transport, sender: str, worker: str, o: Outgoing, report: SendReport) -> None:
    attempts = o.attempts + 1
    try:
        transport.send(o.message, sender, o.recipient)
    except TemporaryFailure as err:
        if attempts >= MAX_ATTEMPTS:
            _finish(db, o.delivery_id, worker, status="failed", attempts=attempts, last_error=str(err)[:500])
            report.failed += 1
        else:
            _finish(db, o.delivery_id, worker, status="retry", attempts=attempts, last_error=str(err)[:500],
                    next_attempt_at=utcnow() + backoff(attempts))
            report.retried += 1
        log.warning("message deferred delivery=%s: %s", o.delivery_id, err)
        return
    except PermanentFailure as err:
        _finish(db, o.delivery_id, worker, status="failed", attempts=attempts, last_error=str(err)[:500])
        report.failed += 1
        log.warning("message failed delivery=%s: %s", o.delivery_id, err)
        return
    _finish(db, o.delivery_id, worker, status="sent", attempts=attempts, sent_at=utcnow(),
            subject=o.rendered.subject, last_error=None)
    report.sent += 1
    log.info("message sent delivery=%s papers=%d", o.delivery_id, o.rendered.shown)


def sender_address(settings: Settings) -> str:
    from digest.mail.message import parse_address

    return parse_address(settings.mail.from_address).addr_spec


# ----------------------------------------------------------------------------------------- preview


def preview(db: Database, settings: Settings, *, email: str | None = None, topics: Sequence[str] = (),
            excludes: Sequence[str] = (), now: datetime | None = None) -> tuple[Rendered, EmailMessage]:
    """What a subscriber (or a made-up one with these topics) would get now; nothing is stored."""
    now = now or utcnow()
    with db.session() as s:
        if email:
            sub = s.scalars(select(Subscriber).options(selectinload(Subscriber.topics))
                            .where(Subscriber.email == email)).first()
            if sub is None:
                raise LookupError(f"no subscriber {email}")
        else:
            from digest.models import Topic

            sub = Subscriber(id=0, email="preview@example.com", frequency="daily", timezone="UTC", hour=8,
                             topics=[Topic(kind="include", phrase=t) for t in topics]
                             + [Topic(kind="exclude", phrase=t) for t in excludes])
        selections, papers = select_papers(s, settings, [sub], now)
        sel = selections[sub.id]
    d = Delivery(id=0, subscriber_id=sub.id, period=period_for(sub.frequency, sub.timezone, now), planned_at=now,
                 message_id=make_message_id(0, "preview", sender_domain(settings.mail.from_address)), email=sub.email)
    d.items = [DeliveryItem(paper_id=p.paper_id, rank=i, score=p.score, kind=k, topic=p.topic, why=p.why)
               for i, (p, k) in enumerate([(p, "pick") for p in sel.picks] + [(p, "trending") for p in sel.trending], 1)]
    links = Links(settings.web.base_url, settings.secret())
    return render_delivery(settings, links, default_renderer(), sub, d, papers, now)


# ------------------------------------------------------------------------------------------ status


def pending_count(db: Database, email: str | None = None) -> int:
    from sqlalchemy import func

    with db.session() as s:
        q = select(func.count()).select_from(Delivery).where(Delivery.status.in_(["planned", "retry", "sending"]))
        if email:
            q = q.where(Delivery.email == email)
        return s.scalar(q) or 0


def status(db: Database, settings: Settings) -> dict:
    """What `digest status` shows: counts, last fetch per source, last edition, recent failures."""
    from sqlalchemy import func

    from digest.models import SourceState

    with db.session() as s:
        states = {x.name: x for x in s.scalars(select(SourceState))}
        failures = s.scalars(select(Delivery).where(Delivery.status == "failed").order_by(Delivery.id.desc()).limit(5))
        return {
            "database": db.engine.url.render_as_string(hide_password=True),
            "papers": s.scalar(select(func.count()).select_from(PaperRow)) or 0,
            "subscribers": dict(s.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status)).all()),
            "deliveries": dict(s.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()),
            "last_sent_at": s.scalar(select(func.max(Delivery.sent_at))),
            "sources": [
                {"name": name, "type": cfg.type,
                 "last_success_at": states[name].last_success_at if name in states else None,
                 "last_error": states[name].last_error if name in states else None}
                for name, cfg in settings.sources.items()
            ],
            "recent_failures": [{"email": f.email, "period": f.period, "error": f.last_error} for f in failures],
        }

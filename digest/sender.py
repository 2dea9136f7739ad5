"""Sending: claim due deliveries from the ledger with a lease, render, send, record the outcome.

A second `send` finds nothing to do; a crashed one leaves leases that expire and are reclaimed.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.orm import selectinload

from digest.config import Settings
from digest.db import Database
from digest.links import Links
from digest.mail.message import Envelope, build_message
from digest.mail.transport import PermanentFailure, TemporaryFailure, Transport
from digest.mail.transport import from_settings as transport_from_settings
from digest.models import Delivery, DeliveryItem, Subscriber, Suppression
from digest.planner import load_papers, utcnow
from digest.render import Rendered, default_renderer
from digest.render.compose import compose
from digest.types import Paper, Pick

log = logging.getLogger("digest.sender")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


LEASE = timedelta(minutes=10)
MAX_ATTEMPTS = 5


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


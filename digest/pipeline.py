"""The pipeline's entry points for the shells (CLI, scheduler, web): plan, send, preview, status.

Planning lives in `digest.planning.planner`, sending in `digest.delivery.sender`; this module adds the read-only views.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from digest.config import Settings
from digest.delivery.sender import SendReport, due_clause, render_envelope, send
from digest.mail import signing
from digest.mail.message import make_message_id, message_bytes, sender_domain
from digest.planning.planner import PlanReport, period_for, plan, select_papers, utcnow
from digest.render import Rendered, default_renderer
from digest.store.db import Database
from digest.store.models import Delivery, DeliveryItem, Subscriber
from digest.store.models import Paper as PaperRow
from digest.subscriptions.links import Links

__all__ = ["PlanReport", "SendReport", "plan", "send", "preview", "status", "pending_count"]


# ----------------------------------------------------------------------------------------- preview


def preview(db: Database, settings: Settings, *, email: str | None = None, topics: Sequence[str] = (),
            excludes: Sequence[str] = (), now: datetime | None = None) -> tuple[Rendered, bytes]:
    """What a subscriber (or a made-up one with these topics) would get now, and the message exactly as
    it would go on the wire (DKIM-signed when a key is configured); nothing is stored or sent."""
    now = now or utcnow()
    with db.session() as s:
        if email:
            sub = s.scalars(select(Subscriber).options(selectinload(Subscriber.topics))
                            .where(Subscriber.email == email)).first()
            if sub is None:
                raise LookupError(f"no subscriber {email}")
        else:
            from digest.store.models import Topic

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
    rendered, env = render_envelope(settings, links, default_renderer(), sub, d, papers, now)
    data = message_bytes(env, rendered.text, rendered.html)
    signer = signing.from_settings(settings)
    return rendered, signer.sign(data) if signer else data


# ------------------------------------------------------------------------------------------ status


def pending_count(db: Database, email: str | None = None, now: datetime | None = None) -> int:
    """How many deliveries a `send` now would take (for its progress bar)."""
    from sqlalchemy import func

    with db.session() as s:
        q = select(func.count()).select_from(Delivery).where(due_clause(now or utcnow()))
        if email:
            q = q.where(Delivery.email == email)
        return s.scalar(q) or 0


def status(db: Database, settings: Settings) -> dict:
    """What `digest status` shows: counts, last fetch per source, last edition, recent failures."""
    from sqlalchemy import func

    from digest.store.models import SourceState

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

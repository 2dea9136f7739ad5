"""`digest preview`: what a subscriber (or a made-up one) would get now; nothing stored or sent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from digest.config import Settings
from digest.delivery.channels import Channels
from digest.delivery.loop import setup_for
from digest.mail import signing
from digest.mail.message import make_message_id, sender_domain
from digest.planning import planner
from digest.records import Edition, Subscriber, utcnow
from digest.render import Rendered
from digest.store import papers as paper_store
from digest.store import subscribers as subscriber_store
from digest.store.db import Database
from digest.subscriptions.rules import clean_weighted_topics
from digest.usecases.planning import candidate_pool, select


@dataclass(frozen=True)
class Preview:
    rendered: Rendered  # the edition as the email shows it
    data: bytes  # what its channel would send: the message as it goes on the wire, or a team channel's JSON
    media: str  # what `data` is: "eml" or "json"


def preview(db: Database, settings: Settings, *, email: str | None = None, topics: Sequence[str] = (),
            excludes: Sequence[str] = (), now: datetime | None = None) -> Preview:
    """What a subscriber (or a made-up one with these topics) would get now, as their channel would
    send it (a message DKIM-signed when a key is configured, or a team channel's JSON)."""
    now = now or utcnow()
    if email:
        with db.session() as s:
            sub = subscriber_store.by_email(s, email)
        if sub is None:
            raise LookupError(f"no subscriber {email}")
    else:
        weighed = clean_weighted_topics(topics)  # "diffusion models=2", as a subscriber may write it
        weights = tuple(w for _, w in weighed) if any(w != 1 for _, w in weighed) else ()
        sub = Subscriber(id=0, email="preview@example.com", topics=tuple(p for p, _ in weighed),
                         topic_weights=weights, excludes=tuple(excludes))
    run = candidate_pool(db, settings, now)
    sel = select(db, settings, run, [sub], now)[sub.id]
    edition = Edition(subscriber_id=sub.id, email=sub.email, period=planner.period_of(sub, now),
                      window_start=sel.window_start, window_end=now, planned_at=now, picks=tuple(sel.picks),
                      trending=tuple(sel.trending), id=0,
                      message_id=make_message_id(0, "preview", sender_domain(settings.mail.from_address)))
    channel = Channels(setup_for(settings, signing.from_settings(settings))).of(sub.channel)
    with db.session() as s:  # the pool's records leave the abstracts out: the edition's papers whole
        papers = paper_store.by_ids(s, sorted({p.paper_id for p in (*sel.picks, *sel.trending)}))
    rendered, data = channel.preview(sub, edition, papers, now)
    return Preview(rendered, data, channel.media)

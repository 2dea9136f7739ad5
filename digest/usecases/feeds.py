"""A subscriber's private Atom feed of the papers they were sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.config import Settings
from digest.delivery import ledger
from digest.records import DeliveryStatus, SubscriberStatus, utcnow
from digest.render import feed as atom
from digest.store import papers as paper_store
from digest.store import subscribers as subscriber_store
from digest.store.db import Database
from digest.subscriptions.links import links_for

FEED_EDITIONS = 10  # a feed lists the papers of this many latest sent editions


@dataclass(frozen=True)
class FeedDocument:
    """A subscriber's Atom feed, with what a conditional GET is answered from."""

    body: bytes
    etag: str  # the body's hash: it changes whenever anything in the feed does
    updated: datetime  # the latest edition's send time (Last-Modified), or when they subscribed


def feed(db: Database, settings: Settings, subscriber_id: int, limit: int = FEED_EDITIONS,
         self_url: str | None = None) -> FeedDocument | None:
    """The papers of a subscriber's latest sent editions as an Atom feed; None once the subscriber is
    gone or unsubscribed (the feed ends with them). `self_url`: the feed's link as the reader asked
    for it (default: a new one). Nothing in it is signed anew per request, so the same editions give
    the same bytes, and the same ETag, at every poll."""
    with db.session() as s:
        sub = subscriber_store.by_id(s, subscriber_id)
    if sub is None or sub.status == SubscriberStatus.UNSUBSCRIBED:
        return None
    editions = [e for e in ledger.recent(db, subscriber_id, limit, status=DeliveryStatus.SENT) if e.sent_at]
    with db.session() as s:
        papers = paper_store.by_ids(s,
                                    sorted({p.paper_id for e in editions for p in (*e.picks, *e.trending)}))
    base = settings.web.base_url
    items = [(e.sent_at,
              [(papers[p.paper_id], p, kind) for kind, picks in (("pick", e.picks), ("trending", e.trending))
                          for p in picks if p.paper_id in papers]) for e in editions]
    links = links_for(settings)
    updated = max((e.sent_at for e in editions), default=sub.created_at or utcnow())
    content = atom.FeedContent(
        id=atom.feed_id(base, subscriber_id, settings.secrets()[-1]),  # the oldest: kept over a rotation
        title=f"{settings.digest.site_name}: your papers",
        self_url=self_url or links.feed(subscriber_id), site_url=f"{base}/",
        author=settings.digest.site_name, updated=updated,
        entries=atom.entries_of(items, base, settings.digest.excerpt_chars))
    body = atom.render_atom(content)
    return FeedDocument(body=body, etag=atom.etag_of(body), updated=updated)

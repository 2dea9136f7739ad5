"""Seeding a profile with one's own papers: by arXiv id (fetched from arXiv), or from a BibTeX file
or a Zotero CSV export (`digest subscribers seed`, the preferences page)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from digest.config import ArxivSource, Settings
from digest.sources import SourceError
from digest.sources import arxiv as arxiv_source
from digest.sources.http import HttpClient
from digest.store.db import Database
from digest.subscriptions import seeds, subscribers


def seed_arxiv(db: Database, settings: Settings, email: str, ids: Sequence[str],
               now: datetime | None = None) -> seeds.SeedReport:
    """Seed a subscriber's profile with papers by arXiv id, fetched from the arXiv API (the first
    configured `arxiv` source's base_url and delay, else arXiv's own). Ids arXiv does not know are
    reported; none known at all is an error."""
    wanted = seeds.check_ids(ids)
    subscribers.get(db, email)  # an unknown subscriber is refused before arXiv is asked
    src = next((c for c in settings.sources.values() if isinstance(c, ArxivSource)),
               ArxivSource(type="arxiv"))
    try:
        with HttpClient(settings.http) as client:
            listings, missing = arxiv_source.fetch_ids(src.base_url, wanted, client, delay=src.delay)
    except SourceError as err:
        raise subscribers.SubscriberError(f"arXiv: {err}") from None
    if not listings:
        raise subscribers.SubscriberError(f"arXiv has none of {', '.join(missing)}; nothing seeded")
    return seeds.seed(db, email, listings, missing=missing, now=now)


def seed_file(db: Database, email: str, name: str, data: bytes, kind: str | None = None,
              now: datetime | None = None) -> seeds.SeedReport:
    """Seed a subscriber's profile with the papers of a BibTeX file or a Zotero CSV export."""
    subscribers.get(db, email)
    found = seeds.read_file(name, data, kind)
    return seeds.seed(db, email, found.listings, skipped=found.skipped, now=now)

"""Seeding a profile with one's own papers: by arXiv id (fetched from arXiv), or from a BibTeX file
or a Zotero CSV export (`digest subscribers seed`, the preferences page)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from digest.background import Worker
from digest.config import ArxivSource, Settings
from digest.sources import SourceError
from digest.sources import arxiv as arxiv_source
from digest.sources.http import HttpClient
from digest.store.db import Database
from digest.subscriptions import seeds, subscribers

log = logging.getLogger("digest.seeding")
PAGE_ARXIV_TIMEOUT = 10.0  # seconds a seeding asked for on a page gives each arXiv call, tried once


def arxiv_calls(ids: Sequence[str]) -> int:
    """How many calls to arXiv seeding these ids takes (`fetch_ids` asks ID_BATCH ids a call); a bad id
    is refused here as `seed_arxiv` would refuse it."""
    return -(-len(seeds.check_ids(ids)) // arxiv_source.ID_BATCH)


def seed_arxiv(db: Database, settings: Settings, email: str, ids: Sequence[str],
               now: datetime | None = None, progress: Callable[[int], None] | None = None,
               ) -> seeds.SeedReport:
    """Seed a subscriber's profile with papers by arXiv id, fetched from the arXiv API (the first
    configured `arxiv` source's base_url and delay, else arXiv's own). Ids arXiv does not know are
    reported; none known at all is an error. `progress(n)` as arXiv answers for n more of them."""
    wanted = seeds.check_ids(ids)
    subscribers.get(db, email)  # an unknown subscriber is refused before arXiv is asked
    src = next((c for c in settings.sources.values() if isinstance(c, ArxivSource)),
               ArxivSource(type="arxiv"))
    try:
        with HttpClient(settings.http) as client:
            listings, missing = arxiv_source.fetch_ids(src.base_url, wanted, client, delay=src.delay,
                                                       progress=progress)
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


class SeedingQueue:
    """Seedings by arXiv id asked for on the preferences page, fetched by one background thread after
    the page is answered: however long arXiv takes (or hangs), no request waits for it and the server's
    threads stay free (`/healthz` answers). Each call to arXiv waits `PAGE_ARXIV_TIMEOUT` at most,
    without retries. One seeding per subscriber waits at a time, at most `maxsize` in all; the page
    shows whether one is under way and how the last one ended (`state`)."""

    def __init__(self, db: Database, settings: Settings, maxsize: int = 50):
        http = settings.http.model_copy(update={"timeout": min(settings.http.timeout, PAGE_ARXIV_TIMEOUT),
                                                "retries": 0})
        self.db, self.settings = db, settings.model_copy(update={"http": http})
        self._worker: Worker[tuple[str, list[str]]] = Worker("seeding", self._seed, maxsize, log)
        self._waiting: set[str] = set()
        self._ended: dict[str, str] = {}  # email -> how their last seeding ended, until shown
        self._lock = threading.Lock()

    def put(self, email: str, ids: Sequence[str]) -> None:
        """Queue a seeding (ids checked now: SubscriberError); never waits. Raises SubscriberError when
        this subscriber's last one is still waiting or too many are."""
        wanted = seeds.check_ids(ids)
        with self._lock:
            if email in self._waiting:
                raise subscribers.SubscriberError("your papers from arXiv are still being fetched; "
                                                  "try again in a minute")
            if not self._worker.offer((email, wanted)):
                raise subscribers.SubscriberError("arXiv is slow to answer just now; try again in a few "
                                                  "minutes")
            self._waiting.add(email)
            self._ended.pop(email, None)

    def state(self, email: str) -> tuple[bool, str | None]:
        """(whether a seeding of theirs is under way, how the last one ended: shown once)."""
        with self._lock:
            return email in self._waiting, self._ended.pop(email, None)

    def join(self) -> None:
        """Wait until every seeding queued so far has ended (tests)."""
        self._worker.join()

    def close(self) -> None:
        """At shutdown: the seeding in hand ends (each arXiv call waits PAGE_ARXIV_TIMEOUT at most), those
        still waiting are not fetched (logged; their subscribers may ask again)."""
        dropped = self._worker.stop()
        with self._lock:
            self._waiting.difference_update(email for email, _ in dropped)
        if dropped:
            log.warning("seeding: the server stops; %d seedings from arXiv asked for on the preferences "
                        "page were not fetched", len(dropped))

    def _seed(self, job: tuple[str, list[str]]) -> None:
        email, ids = job
        try:
            report = seed_arxiv(self.db, self.settings, email, ids)
            ended = f"{report.seeded} of your papers were added from arXiv."
        except subscribers.SubscriberError as err:
            ended = f"Your papers could not be added: {err}"
        except Exception:  # noqa: BLE001 - one seeding failing never stops the next
            log.exception("seeding from arXiv failed")
            ended = "Your papers could not be added just now; try again later."
        with self._lock:
            self._ended[email] = ended
            while len(self._ended) > 1000:  # bounded: the oldest unshown outcomes go first
                self._ended.pop(next(iter(self._ended)))
            self._waiting.discard(email)

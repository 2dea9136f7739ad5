"""Speed work for the subscriber pages: the papers a page previews against, bounded and shared.

Contract (README "Subscriber pages"): a page view never reads or ranks a whole candidate window. The
confirm page's "first digest" and the preferences page's "why no email today?" rank one subscriber
against this pool: at most `PREVIEW_PAPERS` of the window's newest papers (no feedback papers from
outside it), built once per process and database, shared by every view (views arriving while it is
built wait for that one build instead of each making their own), and made again when papers came in
or after `REFRESH_SECONDS`. What planning sends is ranked on the whole window (digest.usecases.planning);
a count a page shows from the preview is of these papers at most.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from digest.config import Settings
from digest.planning import candidates
from digest.store import papers as paper_store
from digest.store.db import Database
from digest.usecases.planning import candidate_pool

PREVIEW_PAPERS = 1000  # the newest papers of the window a page ranks against
REFRESH_SECONDS = 300.0  # a preview pool is made again at the latest this long after it was


@dataclass(frozen=True)
class _Built:
    key: tuple
    newest_id: int
    at: float
    pool: candidates.Pool


_lock = threading.Lock()
_pools: dict[str, _Built] = {}  # per database URL: one pool, the latest


def preview_pool(db: Database, settings: Settings, now: datetime) -> candidates.Pool:
    """The bounded, shared pool of the window at `now` (see the module's contract)."""
    start = candidates.earliest_start(settings.digest, now)
    key = (settings.digest, settings.ranking, start.replace(minute=0, second=0, microsecond=0)
           + timedelta(hours=1))
    with db.session() as s:
        newest = paper_store.newest_id(s)
    with _lock:
        built = _pools.get(db.url)
        if (built is None or built.key != key or built.newest_id != newest
                or time.monotonic() - built.at > REFRESH_SECONDS):
            built = _Built(key, newest, time.monotonic(),
                           candidate_pool(db, settings, now, newest=PREVIEW_PAPERS))
            _pools[db.url] = built
        return built.pool

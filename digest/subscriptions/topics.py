"""Topic suggestions for the subscribe form: the phrases recent paper titles share most."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select

from digest.ranking.text import STOP_WORDS
from digest.records import utcnow
from digest.store.db import Database
from digest.store.models import Paper as PaperRow

FALLBACK_TOPICS = ["large language models", "diffusion models", "reinforcement learning",
                   "graph neural networks"]
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9-]+")


def suggest_topics(db: Database, now: datetime | None = None, k: int = 6, days: int = 14) -> list[str]:
    """A few topic phrases from recent paper titles: the most frequent two-word phrases."""
    now = now or utcnow()
    with db.session() as s:
        titles = list(s.scalars(select(PaperRow.title).where(PaperRow.first_seen_at > now
                                                             - timedelta(days=days),
                                                             PaperRow.listed.is_(True))
                                .order_by(PaperRow.upvotes.desc()).limit(500)))
    found = [p for p, n in _phrase_counts(titles).most_common(k) if n >= 2]
    if len(found) < 3:
        found += [t for t in FALLBACK_TOPICS if t not in found]
    return found[:k]


def _phrase_counts(titles: Iterable[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for title in titles:
        for part in re.split(r"[:;,.?!()]", title):
            words = [w.lower() for w in _WORD.findall(part)]
            pairs = {f"{a} {b}" for a, b in zip(words, words[1:], strict=False)
                     if a not in STOP_WORDS and b not in STOP_WORDS and len(a) > 2 and len(b) > 2}
            counts.update(pairs)
    return counts

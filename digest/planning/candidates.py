"""Candidate selection: which papers are new to each subscriber, ranked for all of them in one batch.

Pure: it takes records (subscribers, their windows, the papers) and returns each subscriber's picks
and "also trending" papers; reading them from the store is the pipeline's job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from digest import ranking
from digest.config import DigestSettings
from digest.ranking.semantic import PaperVectors
from digest.records import Paper, Pick, Subscriber


@dataclass(frozen=True)
class Selection:
    picks: list[Pick]
    trending: list[Pick]
    window_start: datetime


def window_start(cfg: DigestSettings, now: datetime, last_window_end: datetime | None) -> datetime:
    """Where a subscriber's next edition starts looking: after their last edition (that did not fail),
    a first edition `first_edition_days` back, never more than `max_lookback_days`."""
    floor = now - timedelta(days=cfg.max_lookback_days)
    return max(floor, last_window_end or now - timedelta(days=cfg.first_edition_days))


def liked_or_disliked(subs: Sequence[Subscriber]) -> set[int]:
    """Every paper id some subscriber gave feedback on (the ranker needs those papers too)."""
    return {pid for s in subs for pid in (*s.liked, *s.disliked)}


def select(cfg: DigestSettings, subs: Sequence[Subscriber], starts: Mapping[int, datetime],
           sent: Mapping[int, set[int]], papers: Sequence[Paper], extra: Sequence[Paper] = (),
           vectors: PaperVectors | None = None, now: datetime | None = None) -> dict[int, Selection]:
    """Rank the papers new to each subscriber: first seen after their window start and never sent to
    them. `papers` are the candidate window (every paper first seen after the earliest start); `extra`
    the papers of their feedback outside it (they steer, and are never picked); `vectors` the
    embeddings of `papers` + `extra`, in that order, for the hybrid ranker."""
    if not subs:
        return {}
    pool = [*papers, *extra]
    candidates = {
        s.id: [p.id for p in papers if p.first_seen_at and p.first_seen_at > starts[s.id] and p.id not in sent[s.id]]
        for s in subs
    }
    picks = ranking.rank(pool, [s.profile(cfg.max_items) for s in subs], candidates=candidates, now=now,
                         vectors=vectors)
    # "Also trending" means upvoted by the community: listings without any upvotes never fill it
    upvoted = [p for p in papers if p.upvotes > 0]
    hot = ranking.trending(upvoted, cfg.trending_items + cfg.max_items, now=now) if cfg.trending_items else []
    out: dict[int, Selection] = {}
    for s in subs:
        mine = picks.get(s.id, [])
        taken = {p.paper_id for p in mine} | sent[s.id]
        allowed = set(candidates[s.id])
        extra_hot = [t for t in hot if t.paper_id not in taken and t.paper_id in allowed][: cfg.trending_items]
        out[s.id] = Selection(picks=mine, trending=extra_hot if mine and any(p.topic for p in mine) else [],
                              window_start=starts[s.id])
    return out

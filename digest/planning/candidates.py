"""Candidate selection: which papers are new to each subscriber, ranked for all of them in batches.

Pure: it takes records (subscribers, their windows, the papers) and returns each subscriber's picks
and "also trending" papers; reading them from the store is the pipeline's job. A run indexes its
papers once (`pool`) and ranks every batch of subscribers against that one index (`select`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from digest import ranking
from digest.config import DigestSettings
from digest.ranking import Corpus, Window
from digest.ranking.semantic import PaperVectors
from digest.ranking.stored_terms import Analysed
from digest.records import Paper, Pick, Subscriber


@dataclass(frozen=True)
class Selection:
    picks: list[Pick]
    trending: list[Pick]
    window_start: datetime


@dataclass(frozen=True)
class Pool:
    """The papers one planning run ranks, indexed once: the candidate window (every listed paper first
    seen since the earliest start any subscriber can have) and the papers of their feedback outside
    it, which steer the ranking but are never picked; with the run's "also trending" list."""

    corpus: Corpus
    hot: Sequence[Pick]  # ranking.Hottest: each pick made when first read
    # all of them, by id (subjects, windows, links); a store's pool holds them without their long
    # texts (abstract, AI summary, comment: store.papers.load_light): rendering reads its papers by id
    papers: dict[int, Paper]
    hot_week: Sequence[Pick] = field(default_factory=list)  # the same by upvotes alone (best of the week)


WEEK = timedelta(days=7)


def window_start(cfg: DigestSettings, now: datetime, last_window_end: datetime | None,
                 whole_week: bool = False) -> datetime:
    """Where a subscriber's next edition starts looking: after their last edition (that did not fail
    and was not skipped as a quiet day, so a quiet day's papers roll over), a first edition
    `first_edition_days` back, never more than `max_lookback_days`. Best of the week (`whole_week`)
    looks at least at the whole week before `now`, whenever the last edition was (what that one sent
    is never sent again: `select` leaves out every paper a subscriber has had)."""
    start = last_window_end or now - timedelta(days=cfg.first_edition_days)
    if whole_week:
        start = min(start, now - WEEK)
    return max(earliest_start(cfg, now), start)


def earliest_start(cfg: DigestSettings, now: datetime) -> datetime:
    """No edition looks further back than this (the start of a run's candidate window)."""
    return now - timedelta(days=cfg.max_lookback_days)


def pool(cfg: DigestSettings, papers: Sequence[Paper], extra: Sequence[Paper] = (),
         vectors: PaperVectors | None = None, now: datetime | None = None,
         analysed: Iterable[Analysed | None] | None = None,
         texts: Sequence[tuple[str, str]] | None = None) -> Pool:
    """Index a run's papers once. `papers` are the candidate window, `extra` the feedback papers
    outside it; `vectors` the embeddings of `papers` + `extra`, in that order (hybrid ranker),
    `analysed` their stored terms, in that order too (read once), and `texts` their (title, abstract)
    (default: the records' own; see ranking.build_corpus)."""
    steering = [replace(p, first_seen_at=None) for p in extra]  # outside every window: never picked
    corpus = ranking.build_corpus([*papers, *steering], now=now, vectors=vectors, analysed=analysed,
                                  texts=texts)
    # "Also trending" means upvoted by the community: listings without any upvotes never fill it
    quiet = {p.id for p in papers if p.upvotes <= 0} | {p.id for p in extra}
    # hottest first
    hot = ranking.hottest(corpus, exclude=quiet) if cfg.trending_items else []
    week = ranking.hottest(corpus, exclude=quiet, whole_window=True) if cfg.trending_items else []
    return Pool(corpus, hot, {p.id: p for p in [*papers, *extra]}, week)


def select(cfg: DigestSettings, run: Pool, subs: Sequence[Subscriber], starts: Mapping[int, datetime],
           sent: Mapping[int, set[int]]) -> dict[int, Selection]:
    """Rank the papers new to each subscriber (first seen after their window start, never sent to
    them) against the run's pool, and add the trending papers they have not had."""
    if not subs:
        return {}
    windows = {s.id: Window(starts[s.id], frozenset(sent.get(s.id, ()))) for s in subs}
    picks = ranking.rank_with(run.corpus, [s.profile(cfg.max_items) for s in subs], candidates=windows)
    out: dict[int, Selection] = {}
    for s in subs:
        mine = picks.get(s.id, [])
        personal = any(p.topic for p in mine)
        hot = _also_trending(run.hot_week if s.best_of_week else run.hot, run, cfg.trending_items,
                             {p.paper_id for p in mine} | windows[s.id].sent,
                             starts[s.id]) if personal else []
        out[s.id] = Selection(picks=mine, trending=hot, window_start=starts[s.id])
    return out


def _also_trending(hot: Sequence[Pick], run: Pool, k: int, taken: set[int], start: datetime) -> list[Pick]:
    """The k hottest papers of `hot` new to a subscriber (first seen after `start`) that they have not had."""
    window = Window(start, frozenset(taken))
    out: list[Pick] = []
    for t in hot:
        if len(out) == k:
            break
        if window.admits(run.papers[t.paper_id]):
            out.append(t)
    return out


def fresh(run: Pool, start: datetime, sent: set[int]) -> int:
    """How many of the run's papers are new to a subscriber: first seen after `start`, never sent to them."""
    window = Window(start, frozenset(sent))
    return sum(1 for p in run.papers.values() if window.admits(p))

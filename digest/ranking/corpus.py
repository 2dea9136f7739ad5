"""A run's papers, indexed once (`build_corpus`): the lexical index, the trending heat, near-duplicate
groups, authors and optional vectors that every ranking over them shares; trending straight from it;
and a subscriber's candidate window as a rule (`Window`)."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from digest.ranking import feedback
from digest.ranking.authors import AuthorIndex
from digest.ranking.index import LexicalIndex, Params
from digest.ranking.near_duplicates import similar_pairs
from digest.ranking.semantic import PaperVectors
from digest.ranking.stored_terms import Analysed
from digest.records import Paper, Pick, Reason, as_utc, title_key, utcnow
from digest.wording import why

HALF_LIFE_DAYS = 7.0  # trending: a paper's heat halves every week
DUPLICATE_COSINE = 0.9  # abstracts this similar are the same paper


@dataclass(frozen=True, eq=False)
class Corpus:
    """The papers of one run with what every ranking over them shares, built once by `build_corpus`.

    Holds the lexical index, the trending heat (as of the `now` it was built for) and the optional
    MiniLM vectors; the unit rows, positions and near-duplicate groups are computed on first use and
    kept. Nothing in it depends on the subscribers, so one corpus serves any number of `rank_with`
    and `trending_in` calls (batches of subscribers) without indexing the papers again.
    """

    papers: tuple[Paper, ...]  # their abstracts may be left out: the texts are `index.docs`
    index: LexicalIndex
    heat: np.ndarray  # trend_scores(papers, now), float32 in 0..1
    vectors: PaperVectors | None = None  # the papers' embeddings, in the order of `papers`
    # why each (topic, paper, label) matched, kept across `rank_with` calls: a run explains a pair once
    explanations: dict[tuple[str, int, str], Reason] = field(default_factory=dict, repr=False)
    # each distinct (liked rows, disliked rows) fitted once per corpus (feedback.models)
    models: dict[tuple, feedback.Model] = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        """Number of papers."""
        return len(self.papers)

    @cached_property
    def votes(self) -> np.ndarray:
        """Heat without the age decay (1 + log(1 + upvotes), scaled to 0..1): what "best of the week"
        ranks by, so a Monday paper competes with Sunday's on equal terms."""
        return trend_scores(self.papers, decay=False)

    @cached_property
    def pos(self) -> dict[int, int]:
        """Row of each paper id."""
        return {p.id: i for i, p in enumerate(self.papers)}

    @cached_property
    def unit(self) -> sp.csr_matrix:
        """The papers' BM25 rows at unit length (feedback cosines)."""
        return self.index.unit_rows()

    @cached_property
    def features(self) -> feedback.Features:
        """The papers' features for the feedback models (feedback.features: tf-idf, BM25, vectors)."""
        return feedback.features(self.index.docs, self.unit, self.vectors)

    @cached_property
    def group(self) -> np.ndarray:
        """Near-duplicate group id per paper (see `_group_of`)."""
        return _group_of(self.papers, self.index.unit_rows(abstracts_only=True, last=True))

    @cached_property
    def authors(self) -> AuthorIndex:
        """The papers' authors by surname (followed authors)."""
        return AuthorIndex([p.authors for p in self.papers])

    @cached_property
    def seen(self) -> np.ndarray:
        """When each paper was first seen (POSIX seconds; -inf for a paper without the date)."""
        return np.array([p.first_seen_at.timestamp() if p.first_seen_at else -np.inf for p in self.papers])

    @cached_property
    def dup_groups(self) -> list[np.ndarray]:
        """The rows of every group with more than one paper."""
        return [np.flatnonzero(self.group == g) for g in np.flatnonzero(np.bincount(self.group) > 1)]


@dataclass(frozen=True)
class Window:
    """A subscriber's candidates as a rule rather than a list: the papers first seen after `after`,
    except those in `sent` (already in one of their editions). Cheap for a whole list of subscribers.
    The one window rule: `admits` for a paper, `rows` for a corpus at once."""

    after: datetime
    sent: frozenset[int] = frozenset()

    def admits(self, p: Paper) -> bool:
        return p.first_seen_at is not None and p.first_seen_at > self.after and p.id not in self.sent

    def rows(self, corpus: Corpus) -> np.ndarray:
        """Which of the corpus's papers it admits (a paper without its first-seen date: none)."""
        inside = corpus.seen > self.after.timestamp()
        if self.sent:
            inside[[corpus.pos[j] for j in self.sent if j in corpus.pos]] = False
        return inside


Candidates = Mapping[int, Collection[int] | Window]


def build_corpus(
    papers: Sequence[Paper], *, now: datetime | None = None, vectors: PaperVectors | None = None,
    analysed: Iterable[Analysed | None] | None = None, texts: Sequence[tuple[str, str]] | None = None,
) -> Corpus:
    """Index `papers` once for ranking: the lexical index and the heat as of `now` (default: the
    current time). `vectors`, when given, must hold one embedding per paper in the same order; they
    turn on the hybrid relevance for every ranking against this corpus. `analysed`: the papers'
    stored terms in the same order (None for a paper without them), read once (LexicalIndex).
    `texts`: each paper's (title, abstract), in order, when the records leave their abstracts out (a
    sequence that may read them when asked, see LexicalIndex); default: the records' own."""
    if vectors is not None and len(vectors.whole) != len(papers):
        raise ValueError(f"{len(vectors.whole)} paper vectors for {len(papers)} papers")
    return Corpus(
        papers=tuple(papers),
        index=LexicalIndex([(p.title, p.abstract) for p in papers] if texts is None else texts,
                           analysed=analysed),
        heat=trend_scores(papers, now),
        vectors=vectors,
    )


def trending(
    papers: Sequence[Paper], k: int, *, exclude: Collection[int] = (), now: datetime | None = None
) -> list[Pick]:
    """The k hottest papers (upvotes, decayed by age), one per near-duplicate group.

    Indexes the papers for their duplicate groups; `trending_in` reuses a prebuilt corpus instead
    (same picks: the groups depend on the abstracts' terms only, which acronyms do not change)."""
    if not papers or k <= 0:
        return []
    plain = LexicalIndex([(p.title, p.abstract) for p in papers], Params(acronyms="off"))
    groups = _group_of(papers, plain.unit_rows(abstracts_only=True, last=True))
    return _hottest(papers, trend_scores(papers, now), groups, exclude)[:k]


def trending_in(corpus: Corpus, k: int, *, exclude: Collection[int] = (),
                whole_window: bool = False) -> list[Pick]:
    """`trending(corpus.papers, k, exclude=exclude, now=<the corpus's now>)` without indexing again;
    with `whole_window`, by upvotes alone (`Corpus.votes`), whatever a paper's age."""
    if not corpus.papers or k <= 0:
        return []
    return hottest(corpus, exclude=exclude, whole_window=whole_window)[:k]


def hottest(corpus: Corpus, *, exclude: Collection[int] = (), whole_window: bool = False) -> Hottest:
    """Every paper of `trending_in(corpus, corpus.n, ...)`, in order, as a `Hottest` (its picks made
    when first read)."""
    return _hottest(corpus.papers, corpus.votes if whole_window else corpus.heat, corpus.group, exclude)


class Hottest(Sequence[Pick]):
    """Trending picks by descending heat (ties: input order), skipping excluded ids and every paper of
    a near-duplicate group already picked; each pick made when first read (a run's whole list, at
    200,000 papers, would be a pick per upvoted paper, and its readers take the first few)."""

    def __init__(self, papers: Sequence[Paper], heat: np.ndarray, rows: np.ndarray) -> None:
        self._papers, self._heat, self._rows = papers, heat, rows.tolist()
        self._made: list[Pick] = []

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        while len(self._made) <= i:
            d = self._rows[len(self._made)]
            p = self._papers[d]
            reason = Reason("trending", upvotes=p.upvotes)
            self._made.append(Pick(p.id, float(self._heat[d]), why=why(reason), reason=reason))
        return self._made[i]


def _hottest(papers: Sequence[Paper], heat: np.ndarray, groups: np.ndarray, exclude: Collection[int]
             ) -> Hottest:
    """The papers by descending heat (ties: input order), without the excluded ids, and one per
    near-duplicate group (its first in that order)."""
    order = np.argsort(-heat, kind="stable")
    if exclude:
        ids = np.fromiter((p.id for p in papers), np.int64, len(papers))
        order = order[~np.isin(ids[order], np.fromiter(exclude, np.int64, len(exclude)))]
    _, first = np.unique(groups[order], return_index=True)
    return Hottest(papers, heat, order[np.sort(first)])


def trend_scores(papers: Sequence[Paper], now: datetime | None = None, *, decay: bool = True) -> np.ndarray:
    """Heat in 0..1: (1 + log(1 + upvotes)) halved every HALF_LIFE_DAYS since published/first seen
    (not halved at all without `decay`)."""
    now = as_utc(now or utcnow())
    heat = np.empty(len(papers))
    for i, p in enumerate(papers):
        when = p.published_at or p.first_seen_at
        age = max(0.0, (now - as_utc(when)).total_seconds() / 86400) if when and decay else 0.0
        heat[i] = (1 + math.log1p(max(p.upvotes, 0))) * 0.5 ** (age / HALF_LIFE_DAYS)
    return (heat / heat.max()).astype(np.float32) if len(heat) else heat


def _group_of(papers: Sequence[Paper], unit: sp.csr_matrix | None) -> np.ndarray:
    """Near-duplicate group id per paper: same normalised title, or abstracts with cosine >= 0.9
    (near_duplicates.similar_pairs: exact, without comparing all pairs)."""
    n = len(papers)
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a: int, b: int) -> None:
        parent[find(a)] = find(b)

    first: dict[str, int] = {}
    for i, p in enumerate(papers):
        key = title_key(p.title)  # the store's dedupe key: one rule for "the same title"
        if key:
            union(i, first.setdefault(key, i))
    del first  # before the abstracts' search: a key per paper
    if unit is not None:
        for a, b in zip(*similar_pairs(unit, DUPLICATE_COSINE), strict=True):
            union(int(a), int(b))
    roots = np.array([find(i) for i in range(n)])
    _, dense = np.unique(roots, return_inverse=True)
    return dense

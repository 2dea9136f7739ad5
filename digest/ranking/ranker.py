"""Batched ranking of candidate papers for many subscribers at once.

Three steps. `build_corpus` indexes the papers once (lexical index, heat, duplicate groups), and a
run may rank any number of batches of subscribers against that one corpus (`rank_with`). Each batch
scores its distinct topics with one sparse product (`_score_phrases`), then walks the subscribers in
chunks of dense numpy rows (`_score_chunk`): best topic per paper, blend with trending, feedback
(each subscriber's model of their liked/disliked papers, see feedback.py), exclusions, candidates,
near-duplicate collapse.
Last, `_choose` takes the top-k of each row and `_write_picks` explains only the picks, cached per
(topic, paper). `rank` does all three for one batch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from digest.ranking import feedback
from digest.ranking.authors import AuthorIndex
from digest.ranking.index import LexicalIndex, Params
from digest.ranking.semantic import PaperVectors, sentences
from digest.ranking.text import normalise_title
from digest.records import Paper, Pick, Profile, as_utc, utcnow

log = logging.getLogger(__name__)

HALF_LIFE_DAYS = 7.0  # trending: a paper's heat halves every week
SEEDED_MIN_SHARE = 0.25  # without topics, liked papers rank: eligible from this share of the best likeness up
SEEDED_DISLIKE_WEIGHT = 0.5  # ... less the likeness to their disliked papers, this much
FOLLOWED_BOOST = 1.0  # a followed author's paper: eligible whatever its topics, and this added to its score
MIN_COVERAGE = 0.5  # a paper must contain at least this share of a topic's word IDF mass
DUPLICATE_COSINE = 0.9  # abstracts this similar are the same paper
SEMANTIC_WEIGHT = 0.5  # hybrid: relevance = (lexical + 0.5 * semantic) / 2, semantic in -2..2 (see semantic.py)
SEMANTIC_MIN = 1.0  # a paper matching a topic in meaning only is eligible from this semantic score up
POOL_FACTOR = 4  # each subscriber's picks are chosen among their best POOL_FACTOR x max_items papers
CELLS_PER_CHUNK = 4_000_000  # bounds the dense working set (~16 MB per float32 matrix)


@dataclass(frozen=True, eq=False)
class Corpus:
    """The papers of one run with what every ranking over them shares, built once by `build_corpus`.

    Holds the lexical index, the trending heat (as of the `now` it was built for) and the optional
    MiniLM vectors; the unit rows, positions and near-duplicate groups are computed on first use and
    kept. Nothing in it depends on the subscribers, so one corpus serves any number of `rank_with`
    and `trending_in` calls (batches of subscribers) without indexing the papers again.
    """

    papers: tuple[Paper, ...]
    index: LexicalIndex
    heat: np.ndarray  # trend_scores(papers, now), float32 in 0..1
    vectors: PaperVectors | None = None  # the papers' embeddings, in the order of `papers`
    # why each (topic, paper, label) matched, kept across `rank_with` calls: a run explains a pair once
    explanations: dict[tuple[str, int, str], tuple[list[str], str]] = field(default_factory=dict, repr=False)
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
    def group(self) -> np.ndarray:
        """Near-duplicate group id per paper (see `_group_of`)."""
        return _group_of(self.papers, self.index.unit_rows(abstracts_only=True))

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
    except those in `sent` (already in one of their editions). Cheap for a whole list of subscribers."""

    after: datetime
    sent: frozenset[int] = frozenset()


Candidates = Mapping[int, Collection[int] | Window]


def build_corpus(
    papers: Sequence[Paper], *, now: datetime | None = None, vectors: PaperVectors | None = None
) -> Corpus:
    """Index `papers` once for ranking: the lexical index and the heat as of `now` (default: the
    current time). `vectors`, when given, must hold one embedding per paper in the same order; they
    turn on the hybrid relevance for every ranking against this corpus."""
    if vectors is not None and len(vectors.whole) != len(papers):
        raise ValueError(f"{len(vectors.whole)} paper vectors for {len(papers)} papers")
    return Corpus(
        papers=tuple(papers),
        index=LexicalIndex([(p.title, p.abstract) for p in papers]),
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
    groups = _group_of(papers, plain.unit_rows(abstracts_only=True))
    return _hottest(papers, trend_scores(papers, now), groups, k, exclude)


def trending_in(corpus: Corpus, k: int, *, exclude: Collection[int] = (), whole_window: bool = False) -> list[Pick]:
    """`trending(corpus.papers, k, exclude=exclude, now=<the corpus's now>)` without indexing again;
    with `whole_window`, by upvotes alone (`Corpus.votes`), whatever a paper's age."""
    if not corpus.papers or k <= 0:
        return []
    return _hottest(corpus.papers, corpus.votes if whole_window else corpus.heat, corpus.group, k, exclude)


def _hottest(
    papers: Sequence[Paper], heat: np.ndarray, groups: np.ndarray, k: int, exclude: Collection[int]
) -> list[Pick]:
    """At most k papers by descending heat (ties: input order), skipping excluded ids and every
    paper of a near-duplicate group already picked."""
    skip = set(exclude)
    seen: set[int] = set()
    out: list[Pick] = []
    for i in np.argsort(-heat, kind="stable"):
        p = papers[i]
        if p.id in skip or groups[i] in seen:
            continue
        seen.add(groups[i])
        out.append(Pick(p.id, float(heat[i]), why=_trending_why(p)))
        if len(out) == k:
            break
    return out


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


def rank(
    papers: Sequence[Paper],
    profiles: Sequence[Profile],
    *,
    candidates: Candidates | None = None,
    trending_weight: float = 0.15,
    now: datetime | None = None,
    vectors: PaperVectors | None = None,
) -> dict[int, list[Pick]]:
    """Picks per subscriber, best first, at most profile.max_items each.

    A subscriber with topics gets papers matching a topic (or very close to a liked paper), scored
    (1 - trending_weight) * relevance + trending_weight * heat; one without topics gets trending
    papers. `candidates` restricts each subscriber to the given paper ids (a subscriber missing from
    the mapping may get any paper). Papers matching an exclude phrase, papers the subscriber already
    liked or disliked, and all but the best of a group of near-duplicates are never picked.
    `vectors` (the papers' MiniLM embeddings, in the order of `papers`) turns on the hybrid
    relevance of `topic_relevance`; without them the ranking is lexical.
    Liked/disliked ids that are not in `papers` are ignored: pass those papers in too (and restrict
    with `candidates`) to let them steer the ranking.
    Same as `rank_with(build_corpus(papers, now=now, vectors=vectors), profiles, ...)`.
    """
    if not papers or not profiles:
        return {pr.subscriber_id: [] for pr in profiles}
    corpus = build_corpus(papers, now=now, vectors=vectors)
    return rank_with(corpus, profiles, candidates=candidates, trending_weight=trending_weight)


def rank_with(
    corpus: Corpus,
    profiles: Sequence[Profile],
    *,
    candidates: Candidates | None = None,
    trending_weight: float = 0.15,
) -> dict[int, list[Pick]]:
    """`rank` against a prebuilt corpus: call it for each batch of subscribers of a run.

    A subscriber's picks do not depend on who else is ranked with them (each has their own pool of
    POOL_FACTOR x max_items), so any batching gives exactly the picks of one call for all of them.
    The corpus is not changed.
    """
    out: dict[int, list[Pick]] = {pr.subscriber_id: [] for pr in profiles}
    if not corpus.papers or not profiles:
        return out
    started = time.perf_counter()
    phrases = _score_phrases(corpus, profiles)
    explain_cache = corpus.explanations
    chunk = max(16, CELLS_PER_CHUNK // corpus.n)
    for start in range(0, len(profiles), chunk):
        part = profiles[start : start + chunk]
        scored = _score_chunk(corpus, phrases, part, candidates, trending_weight)
        chosen = _choose(scored, part)
        if chosen is not None:
            _write_picks(corpus, phrases, part, scored, chosen, explain_cache, out)
    log.info(
        "ranked %d papers for %d subscribers (%d topics, %d picks) in %.2fs",
        corpus.n,
        len(profiles),
        len(phrases.topic_names),
        sum(map(len, out.values())),
        time.perf_counter() - started,
    )
    return out


@dataclass
class _Phrases:
    """Every distinct topic, exclude phrase and feedback paper of one rank_with call, scored against
    the corpus once for all its subscribers (phrases are keyed by `_key`)."""

    topic_row: dict[str, int]  # topic key -> row of rel_all / Q
    topic_names: list[str]
    topic_vecs: np.ndarray | None  # MiniLM embeddings of topic_names (hybrid only)
    rel_all: np.ndarray  # (topics + 1) x papers: topic_relevance, then a zero padding row
    Q: sp.csr_matrix  # the topics' query rows (explanations)
    excl_row: dict[str, int]  # exclude key -> row of excluded
    excluded: np.ndarray  # excludes x papers, bool: the paper holds the phrase
    fb_col: dict[int, int]  # paper row -> row of fb_sim, for every liked or disliked paper
    fb_sim: np.ndarray | None  # feedback papers x papers similarity (feedback.similarity_rows), None without feedback
    followed: dict[str, dict[int, str]] = field(default_factory=dict)  # followed name -> {paper row: as spelled}


def _score_phrases(corpus: Corpus, profiles: Sequence[Profile]) -> _Phrases:
    """Score the profiles' topics (relevance rows), excludes (presence) and feedback papers (cosine
    to every paper), each distinct one once, in order of first appearance."""
    index, n, pos = corpus.index, corpus.n, corpus.pos
    topic_row: dict[str, int] = {}
    for pr in profiles:
        for t in pr.topics:
            if t.strip():
                topic_row.setdefault(_key(t), len(topic_row))
    topic_names = list(topic_row)
    vectors = corpus.vectors
    topic_vecs = vectors.embed_topics(topic_names) if vectors is not None else None  # with the papers' model
    rel_all = corpus_relevance(corpus, topic_names, topic_vecs)
    Q = index.query_matrix(topic_names)[0]
    rel_all = np.vstack([rel_all, np.zeros((1, n), np.float32)])  # padding row for short topic lists
    excl_row: dict[str, int] = {}
    for pr in profiles:
        for x in pr.excludes:
            if x.strip():
                excl_row.setdefault(_key(x), len(excl_row))
    excluded = index.presence(list(excl_row)) if excl_row else np.zeros((0, n), bool)
    fb_docs = sorted({pos[i] for pr in profiles for i in (*pr.liked, *pr.disliked) if i in pos})
    fb_col = {d: j for j, d in enumerate(fb_docs)}
    fb_sim = feedback.similarity_rows(corpus.unit, vectors, fb_docs) if fb_docs else None
    followed = {a: corpus.authors.papers_by(a) for a in sorted({a for pr in profiles for a in pr.authors})}
    return _Phrases(topic_row, topic_names, topic_vecs, rel_all, Q, excl_row, excluded, fb_col, fb_sim, followed)


@dataclass
class _Scored:
    """One chunk of subscribers scored against every paper (rows: the chunk's subscribers)."""

    labels: list[list[str]]  # each subscriber's topics as written (blank ones dropped)
    rows: list[list[int]]  # ... and their rows in _Phrases.rel_all
    rel: np.ndarray  # float32: relevance to the best topic, 0 for no match
    best_topic: np.ndarray  # int16: which of the subscriber's topics that is
    score: np.ndarray  # float32: the final score, -inf where the paper must not be picked


def _score_chunk(
    corpus: Corpus,
    phrases: _Phrases,
    part: Sequence[Profile],
    candidates: Candidates | None,
    trending_weight: float,
) -> _Scored:
    """Dense scores of one chunk: best topic per paper, trending blend (heat alone without topics),
    feedback (without topics but with liked papers: likeness to them in place of topics), followed
    authors, then -inf for ineligible papers (no match, excluded, already rated, not a candidate)
    and for all but the best member of each near-duplicate group."""
    labels = [[t.strip() for t in pr.topics if t.strip()] for pr in part]
    rows = [[phrases.topic_row[_key(t)] for t in ts] for ts in labels]
    rel, best_topic = _best_topic(phrases.rel_all, rows, corpus.n)
    heat = corpus.heat[None, :]
    whole = np.array([pr.whole_window for pr in part])
    if whole.any():  # best of the week: upvotes count whatever the paper's age in the window
        heat = np.where(whole[:, None], corpus.votes[None, :], heat)
    has_topics = np.array([bool(r) for r in rows])
    score = rel * np.float32(1 - trending_weight)
    score += np.float32(trending_weight) * heat
    score[~has_topics] = np.broadcast_to(heat, score.shape)[~has_topics]
    eligible = rel > 0
    eligible[~has_topics] = True
    if phrases.fb_sim is not None:
        eligible |= _feedback(corpus, phrases, part, score)
        if not has_topics.all():  # a seeded profile, say: likeness to their papers in place of topics
            like, dislike = _likeness(part, corpus.pos, phrases.fb_col, phrases.fb_sim)
            _seeded(score, eligible, like, dislike, heat, [
                [corpus.pos[j] for j in (*pr.liked, *pr.disliked) if j in corpus.pos] if not has_topics[i] else []
                for i, pr in enumerate(part)], trending_weight)
    _followed(score, eligible, phrases, part)
    _restrict(eligible, corpus, phrases, part, candidates)
    score[~eligible] = -np.inf
    _collapse_duplicates(score, corpus.dup_groups)
    return _Scored(labels, rows, rel, best_topic, score)


def _seeded(score: np.ndarray, eligible: np.ndarray, like: np.ndarray, dislike: np.ndarray, heat: np.ndarray,
            rated: Sequence[Sequence[int]], trending_weight: float) -> None:
    """In place, for the rows without topics that like some paper (a seeded profile, say; `rated`
    holds the rows of the papers each such row rated, and is empty for the others): their likeness,
    scaled to the best of the papers they did not rate (0..1 as a topic's relevance is), takes the
    place of topic relevance: score (1 - trending_weight) * likeness + trending_weight * heat -
    SEEDED_DISLIKE_WEIGHT * dislikeness, eligible from SEEDED_MIN_SHARE of that best up (none eligible when
    that best is 0). Followed authors come after, so their papers stay eligible."""
    for i, own in enumerate(rated):
        if not own:
            continue
        row = like[i].copy()
        row[list(own)] = 0
        best = row.max()
        if best <= 0:  # no candidate shares a word with the papers they like: nothing to pick
            eligible[i] = False
            continue
        share = row / best
        score[i] = (1 - trending_weight) * share + trending_weight * heat - SEEDED_DISLIKE_WEIGHT * dislike[i]
        eligible[i] = share >= SEEDED_MIN_SHARE


def _followed(score: np.ndarray, eligible: np.ndarray, phrases: _Phrases, part: Sequence[Profile]) -> None:
    """In place: a paper by an author a subscriber follows is eligible whatever its topics and gets
    FOLLOWED_BOOST on top of its score (the window, exclusions and duplicates still apply)."""
    for i, pr in enumerate(part):
        rows = sorted({d for a in pr.authors for d in phrases.followed.get(a, ())})
        if rows:
            eligible[i, rows] = True
            score[i, rows] = np.maximum(score[i, rows], 0) + FOLLOWED_BOOST


def _best_topic(rel_all: np.ndarray, rows: list[list[int]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(subscribers x papers) relevance to each subscriber's best topic and that topic's slot: a
    running max over the topic slots (the first slot wins ties); the padding row stands in for a
    subscriber with fewer topics."""
    pad = len(rel_all) - 1
    rel = np.zeros((len(rows), n), np.float32)
    best_topic = np.zeros((len(rows), n), np.int16)
    for j in range(max(len(r) for r in rows)):
        slot = rel_all[[r[j] if j < len(r) else pad for r in rows]]
        better = slot > rel
        np.copyto(rel, slot, where=better)
        best_topic[better] = j
        del slot, better
    return rel, best_topic


def _restrict(
    eligible: np.ndarray,
    corpus: Corpus,
    phrases: _Phrases,
    part: Sequence[Profile],
    candidates: Candidates | None,
) -> None:
    """Clear, in place, each subscriber's excluded papers, the papers they liked or disliked, and
    (when `candidates` names them) every paper outside their candidates: a list of ids, or a `Window`."""
    pos, n = corpus.pos, corpus.n
    for i, pr in enumerate(part):
        if pr.excludes:
            xs = [phrases.excl_row[_key(x)] for x in pr.excludes if x.strip()]
            if xs:
                eligible[i] &= ~phrases.excluded[xs].any(axis=0)
        if pr.liked or pr.disliked:
            eligible[i, [pos[j] for j in (*pr.liked, *pr.disliked) if j in pos]] = False
        mine = candidates.get(pr.subscriber_id) if candidates is not None else None
        if isinstance(mine, Window):
            eligible[i] &= corpus.seen > mine.after.timestamp()
            if mine.sent:
                eligible[i, [pos[j] for j in mine.sent if j in pos]] = False
        elif mine is not None:
            allowed = np.zeros(n, bool)
            allowed[[pos[j] for j in mine if j in pos]] = True
            eligible[i] &= allowed


def _collapse_duplicates(score: np.ndarray, dup_groups: Sequence[np.ndarray]) -> None:
    """In place: keep only each row's best member of every near-duplicate group (first on ties)."""
    rows = np.arange(len(score))
    for members in dup_groups:
        sub = score[:, members]
        keep = sub.argmax(axis=1)
        mask = np.ones_like(sub, dtype=bool)
        mask[rows, keep] = False
        sub[mask] = -np.inf
        score[:, members] = sub


@dataclass
class _Chosen:
    """The picks of one chunk, in order, before explanations (rows: subscribers, columns: ranks;
    a row's first max_items columns are its picks, until a -inf score)."""

    top: np.ndarray  # paper rows
    scores: list[list[float]]
    rel: list[list[float]]
    best: list[list[int]]  # topic slot of each pick


def _choose(scored: _Scored, part: Sequence[Profile]) -> _Chosen | None:
    """Each subscriber's picks: the pool of their best POOL_FACTOR x max_items papers, best first,
    shared out among their topics by `_balanced`. None when no subscriber of the chunk wants any."""
    score, n = scored.score, scored.score.shape[1]
    k = min(n, max(pr.max_items for pr in part))
    if k <= 0:
        return None
    pool = min(n, POOL_FACTOR * k)  # the best few times k papers; the picks come from these
    top = (
        np.argpartition(-score, pool - 1, axis=1)[:, :pool] if pool < n else np.tile(np.arange(n), (len(part), 1))
    )
    top_scores = np.take_along_axis(score, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    top_rel = np.take_along_axis(scored.rel, top, axis=1)
    top_best = np.take_along_axis(scored.best_topic, top, axis=1)
    sorted_scores = np.take_along_axis(top_scores, order, axis=1)
    max_items = np.array([pr.max_items for pr in part])
    # each subscriber's own pool (POOL_FACTOR x their max_items): the same picks whoever else is ranked with them
    sorted_scores[np.arange(pool)[None, :] >= np.minimum(n, POOL_FACTOR * max_items)[:, None]] = -np.inf
    chosen = _balanced(sorted_scores, top_best, top_rel > 0, max_items, k)
    top = np.take_along_axis(top, chosen, axis=1)
    return _Chosen(
        top,
        np.take_along_axis(sorted_scores, chosen, axis=1).tolist(),
        np.take_along_axis(top_rel, chosen, axis=1).tolist(),
        np.take_along_axis(top_best, chosen, axis=1).tolist(),
    )


def _write_picks(
    corpus: Corpus,
    phrases: _Phrases,
    part: Sequence[Profile],
    scored: _Scored,
    chosen: _Chosen,
    explain_cache: dict[tuple[str, int, str], tuple[list[str], str]],
    out: dict[int, list[Pick]],
) -> None:
    """Append each subscriber's picks to out[subscriber_id] with their explanation: trending for a
    subscriber without topics, the best topic's matched terms (or closest sentence) plus the other
    topics it matches, else "similar to papers you liked"; a followed author's paper says so first.
    Explanations are cached per (topic, paper, label) in `explain_cache` (the corpus's, shared by
    every batch of a run)."""
    fb_rows = list(phrases.fb_col)  # fb_sim row -> paper row
    every_hit = _hits(phrases, scored.rows, chosen.top)
    unpicked, names = -np.inf, phrases.topic_names
    for i, pr in enumerate(part):
        picks = out[pr.subscriber_id]
        rows, labels = scored.rows[i], scored.labels[i]
        top = chosen.top[i, : pr.max_items].tolist()
        liking = [phrases.fb_col[corpus.pos[j]] for j in pr.liked if j in corpus.pos]  # rows of fb_sim
        hits, scores, rel, best_of = every_hit[i], chosen.scores[i], chosen.rel[i], chosen.best[i]
        for j, d in enumerate(top):
            s = scores[j]
            if s == unpicked:
                break
            p = corpus.papers[d]
            if not rows and not liking:
                picks.append(Pick(p.id, s, why=_trending_why(p)))
            elif rel[j] > 0:
                best = best_of[j]
                key = (names[rows[best]], d, labels[best])
                if (explained := explain_cache.get(key)) is None:
                    explained = explain_cache[key] = _explain_pick(corpus, phrases, rows[best], d, labels[best])
                matched, why = explained
                others = [labels[o] for o, hit in enumerate(hits[j]) if hit and o != best]
                if others:
                    why += "; also " + ", ".join(f"“{o}”" for o in others)
                picks.append(Pick(p.id, s, topic=labels[best], terms=list(matched), why=why))
            else:
                picks.append(Pick(p.id, s, why=_liked_why(corpus, phrases, fb_rows, liking, d)))
            by = next((phrases.followed[a][d] for a in pr.authors if d in phrases.followed.get(a, ())),
                      None) if pr.authors else None
            if by is not None:
                pick = picks[-1]
                matched_topic = pick.topic is not None
                pick.why = f"By {by}, whom you follow" + (f"; {pick.why[0].lower()}{pick.why[1:]}" if matched_topic else "")


def _hits(phrases: _Phrases, rows: Sequence[Sequence[int]], top: np.ndarray) -> list[list[list[bool]]]:
    """For each subscriber of a chunk and each paper in their `top` row, whether each of their topics
    matches it ([subscriber][rank][topic slot]; slots past a subscriber's own topics hit nothing): one
    array lookup for the whole chunk."""
    width = max((len(r) for r in rows), default=0)
    if not width or not top.size:  # nobody has a topic (only they would look)
        return [[] for _ in rows]
    pad = phrases.rel_all.shape[0] - 1  # the zero row
    slots = np.array([[*r, *[pad] * (width - len(r))] for r in rows])
    return (phrases.rel_all[slots[:, None, :], top[:, :, None]] > 0).tolist()


def _liked_why(corpus: Corpus, phrases: _Phrases, fb_rows: Sequence[int], liking: Sequence[int], d: int) -> str:
    """"Similar to “<the liked paper it is closest to>”, which you liked"."""
    if not liking or phrases.fb_sim is None:
        return "Similar to papers you liked"
    sims = phrases.fb_sim[liking, d]
    closest = fb_rows[liking[int(np.argmax(sims))]]
    title = " ".join(corpus.papers[closest].title.split())
    title = title if len(title) <= 80 else title[:77].rstrip() + "…"
    return f"Similar to “{title}”, which you liked"


def _explain_pick(corpus: Corpus, phrases: _Phrases, t: int, d: int, label: str) -> tuple[list[str], str]:
    """Why paper row d matches topic row t: its matched words, else (hybrid) its closest sentence."""
    matched, why = _explain(corpus.index, phrases.topic_names[t], phrases.Q, t, d, label)
    if not matched and phrases.topic_vecs is not None and corpus.vectors is not None:
        return _explain_meaning(corpus.vectors, phrases.topic_vecs[t], corpus.papers[d], d, label)
    return matched, why


def corpus_relevance(corpus: Corpus, topics: Sequence[str], topic_vecs: np.ndarray | None = None) -> np.ndarray:
    """(topics x papers) `topic_relevance` against a corpus: hybrid when it holds paper vectors
    (`topic_vecs`, the topics' embeddings, computed when not given), else lexical."""
    if corpus.vectors is None:
        return topic_relevance(corpus.index, topics)
    vecs = corpus.vectors.embed_topics(list(topics)) if topic_vecs is None else topic_vecs  # the papers' model
    return topic_relevance(corpus.index, topics, corpus.vectors.similarity(vecs))


def topic_relevance(index: LexicalIndex, topics: Sequence[str], semantic: np.ndarray | None = None) -> np.ndarray:
    """(topics x papers) relevance in 0..~1, 0 where a paper does not match.

    Lexical: the BM25F score scaled by the topic's ideal score, 0 where a paper holds under
    MIN_COVERAGE of the topic's word IDF mass (a passing match on a topic's commonest word is no match).
    Hybrid, when `semantic` (PaperVectors.similarity of the topics) is given: (lexical + SEMANTIC_WEIGHT
    * semantic) / 2, and a paper without a lexical match still matches from SEMANTIC_MIN up.
    """
    if not topics:
        return np.zeros((0, index.n_docs), np.float32)
    rel, _ = index.relevance(topics)
    rel[index.coverage(topics) < MIN_COVERAGE] = 0
    if semantic is None:
        return rel
    hybrid = (rel + SEMANTIC_WEIGHT * np.maximum(semantic, 0)) / (1 + 2 * SEMANTIC_WEIGHT)
    return np.where((rel > 0) | (semantic >= SEMANTIC_MIN), hybrid, 0).astype(np.float32)


def _balanced(scores: np.ndarray, group: np.ndarray, matched: np.ndarray, max_items: np.ndarray, k: int,
              ) -> np.ndarray:
    """Which of each row's pool (sorted best first) to pick, as positions in score order.

    One topic must not crowd out the others: first every topic that has candidates gets up to an
    equal share of the row's max_items (ceil(max_items / topics with candidates)), best first; slots
    left over go to the best of the rest, so no slot stays empty while candidates remain. Papers that
    match no topic (feedback or trending picks) count as one more group."""
    m, pool = scores.shape
    live = np.isfinite(scores)
    g = np.where(matched, group.astype(np.int64), -1)
    groups = np.unique(g)
    onehot = (g[..., None] == groups) & live[..., None]  # (rows, pool, groups)
    nth = np.take_along_axis(np.cumsum(onehot, axis=1), np.searchsorted(groups, g)[..., None], axis=2)[..., 0] - 1
    share = -(-max_items // np.maximum(onehot.any(axis=1).sum(axis=1), 1))  # ceil division
    first = live & (nth < share[:, None])
    priority = np.where(first, 0, np.where(live, 1, 2)) * pool + np.arange(pool)
    picked = np.argsort(priority, axis=1, kind="stable")[:, :k]  # each row's k best by priority
    cut = np.arange(k)[None, :] >= max_items[:, None]  # beyond a row's own max_items: not picked
    picked = np.where(cut, pool + np.arange(k), picked)  # sort those to the end ...
    picked.sort(axis=1)
    return np.minimum(picked, pool - 1) if pool else picked  # ... where the caller's max_items cut drops them


def _feedback(corpus: Corpus, phrases: _Phrases, part: Sequence[Profile], score: np.ndarray) -> np.ndarray:
    """Fuse each subscriber's feedback model into their scores (in place) and return where it makes
    a paper eligible without a topic match (far above their typical paper, for those who liked some)."""
    pos = corpus.pos
    rated = [([pos[j] for j in pr.liked if j in pos], [pos[j] for j in pr.disliked if j in pos]) for pr in part]
    assert phrases.fb_sim is not None
    return feedback.apply(score, rated, phrases.fb_sim, phrases.fb_col, corpus.models)


def _likeness(
    part: Sequence[Profile], pos: dict[int, int], fb_col: dict[int, int], fb_sim: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean similarity of every paper to each subscriber's liked papers and to their disliked papers."""
    mats = []
    for attr in ("liked", "disliked"):
        r, c, v = [], [], []
        for i, pr in enumerate(part):
            cols = [fb_col[pos[j]] for j in getattr(pr, attr) if j in pos]
            r += [i] * len(cols)
            c += cols
            v += [1 / len(cols)] * len(cols) if cols else []
        A = sp.csr_matrix((v, (r, c)), shape=(len(part), fb_sim.shape[0]), dtype=np.float32)
        mats.append(np.asarray(A @ fb_sim, dtype=np.float32))
    return mats[0], mats[1]


def _explain(
    index: LexicalIndex, query: str, Q: sp.csr_matrix, t: int, d: int, label: str
) -> tuple[list[str], str]:
    matched = index.matched(query, Q, t, d)
    why = f"Matches “{label}”: {', '.join(matched)}" if matched else f"Matches “{label}”"
    return matched, why


def _explain_meaning(
    vectors: PaperVectors, topic_vec: np.ndarray, p: Paper, d: int, label: str
) -> tuple[list[str], str]:
    """Why a paper that shares no topic words matched: the abstract sentence closest in meaning."""
    k = vectors.best_sentence(topic_vec, d)
    said = sentences(p.abstract)
    if k is None or k >= len(said):
        return [], f"Close in meaning to “{label}”"
    quote = said[k] if len(said[k]) <= 160 else said[k][:157].rstrip() + "…"
    return [], f"Close in meaning to “{label}”: “{quote}”"


def _trending_why(p: Paper) -> str:
    if p.upvotes > 0:
        return f"Trending: {p.upvotes} upvote{'s' if p.upvotes != 1 else ''}"
    return "Trending: newly listed"


def _key(phrase: str) -> str:
    return " ".join(phrase.lower().split())


def _group_of(papers: Sequence[Paper], unit: sp.csr_matrix | None) -> np.ndarray:
    """Near-duplicate group id per paper: same normalised title, or abstracts with cosine >= 0.9."""
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
        key = normalise_title(p.title)
        if key:
            union(i, first.setdefault(key, i))
    if unit is not None:
        for start in range(0, n, 1000):
            block = unit[start : start + 1000] @ unit.T
            block = block.tocoo()
            for a, b in zip(
                block.row[block.data >= DUPLICATE_COSINE],
                block.col[block.data >= DUPLICATE_COSINE],
                strict=True,
            ):
                if start + a != b:
                    union(start + int(a), int(b))
    roots = np.array([find(i) for i in range(n)])
    _, dense = np.unique(roots, return_inverse=True)
    return dense

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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np
import scipy.sparse as sp

from digest.ranking import feedback
from digest.ranking.balance import topic_weights, weighed, with_weight
from digest.ranking.corpus import Candidates, Corpus, Window, build_corpus
from digest.ranking.index import LexicalIndex
from digest.ranking.semantic import PaperVectors, sentences
from digest.records import Paper, Pick, Profile, Reason
from digest.wording import why

log = logging.getLogger(__name__)

SEEDED_MIN_SHARE = 0.25  # without topics, liked papers rank: eligible from this share of the best likeness up
FOLLOWED_BOOST = 1.0  # a followed author's paper: eligible whatever its topics, and this added to its score
MIN_COVERAGE = 0.5  # a paper must contain at least this share of a topic's word IDF mass
# hybrid: relevance = (lexical + 0.5 * semantic) / 2, semantic in -2..2 (see semantic.py)
SEMANTIC_WEIGHT = 0.5
SEMANTIC_MIN = 1.0  # a paper matching a topic in meaning only is eligible from this semantic score up
POOL_FACTOR = 4  # each subscriber's picks are chosen among their best POOL_FACTOR x max_items papers
CELLS_PER_CHUNK = 4_000_000  # bounds the dense working set (~16 MB per float32 matrix)


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


def blend(relevance: np.ndarray, heat: np.ndarray, trending_weight: float) -> np.ndarray:
    """The ranking formula, in one place: a paper's score for a subscriber is its relevance to them
    (their best topic, or likeness to the papers they liked) blended with its trending heat, both in
    0..1: (1 - trending_weight) * relevance + trending_weight * heat. Followed authors, feedback,
    exclusions and the window act on the blended score (`_score_chunk`)."""
    return relevance * np.float32(1 - trending_weight) + np.float32(trending_weight) * heat


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
    # feedback papers x papers similarity (feedback.similarity_rows), None without feedback
    fb_sim: np.ndarray | None
    # followed name -> {paper row: as spelled}
    followed: dict[str, dict[int, str]] = field(default_factory=dict)


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
    rel_all = np.zeros((len(topic_names) + 1, n), np.float32)  # the last row pads short topic lists
    corpus_relevance(corpus, topic_names, topic_vecs, out=rel_all[:-1])
    Q = index.query_matrix(topic_names)[0]
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
    return _Phrases(topic_row, topic_names, topic_vecs, rel_all, Q, excl_row, excluded, fb_col, fb_sim,
                    followed)


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
    score = blend(rel, heat, trending_weight)
    score[~has_topics] = np.broadcast_to(heat, score.shape)[~has_topics]
    eligible = rel > 0
    eligible[~has_topics] = True
    if phrases.fb_sim is not None:
        z, extra = _feedback(corpus, part, score)
        eligible |= extra
        if not has_topics.all():  # a seeded profile, say: their model in place of topics
            like, _ = _likeness(part, corpus.pos, phrases.fb_col, phrases.fb_sim)
            _seeded(score, eligible, like, z, heat, [
                [corpus.pos[j] for j in (*pr.liked, *pr.disliked) if j in corpus.pos] if not has_topics[i]
                else []
                for i, pr in enumerate(part)], trending_weight)
    _followed(score, eligible, phrases, part)
    _restrict(eligible, corpus, phrases, part, candidates)
    score[~eligible] = -np.inf
    _collapse_duplicates(score, corpus.dup_groups)
    return _Scored(labels, rows, rel, best_topic, score)


def _seeded(score: np.ndarray, eligible: np.ndarray, like: np.ndarray, z: np.ndarray, heat: np.ndarray,
            rated: Sequence[Sequence[int]], trending_weight: float) -> None:
    """In place, for the rows without topics that like some paper (a seeded profile, say; `rated`
    holds the rows of the papers each such row rated, and is empty for the others): their feedback
    model (`z`, its z-scores: their papers against the rest, less what they disliked), scaled to the
    best of the papers they did not rate (0..1 as a topic's relevance is), takes the place of topic
    relevance: score (1 - trending_weight) * that + trending_weight * heat. Eligible: the papers from
    SEEDED_MIN_SHARE of the best likeness (mean similarity to the liked papers) up (none when that
    best is 0). Followed authors come after, so their papers stay eligible."""
    for i, own in enumerate(rated):
        if not own:
            continue
        row = like[i].copy()
        row[list(own)] = 0
        best = row.max()
        if best <= 0:  # no candidate shares a word with the papers they like: nothing to pick
            eligible[i] = False
            continue
        model = np.maximum(z[i], 0)
        model[list(own)] = 0
        top = model.max()
        own_heat = heat[i] if len(heat) > 1 else heat[0]  # per row when best-of-the-week is in the chunk
        score[i] = blend(model / top if top > 0 else row / best, own_heat, trending_weight)
        eligible[i] = row / best >= SEEDED_MIN_SHARE


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
            eligible[i] &= mine.rows(corpus)
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
    weighted: list[list[bool]] | None = None  # whether the topics' weights gave each pick its place


def _choose(scored: _Scored, part: Sequence[Profile]) -> _Chosen | None:
    """Each subscriber's picks: the pool of their best POOL_FACTOR x max_items papers, best first,
    shared out among their topics by `balance.weighed`. None when no subscriber of the chunk wants any."""
    score, n = scored.score, scored.score.shape[1]
    k = min(n, max(pr.max_items for pr in part))
    if k <= 0:
        return None
    pool = min(n, POOL_FACTOR * k)  # the best few times k papers; the picks come from these
    top = (
        np.argpartition(-score, pool - 1, axis=1)[:, :pool] if pool < n
        else np.tile(np.arange(n), (len(part), 1))
    )
    top_scores = np.take_along_axis(score, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    top_rel = np.take_along_axis(scored.rel, top, axis=1)
    top_best = np.take_along_axis(scored.best_topic, top, axis=1)
    sorted_scores = np.take_along_axis(top_scores, order, axis=1)
    max_items = np.array([pr.max_items for pr in part])
    # each subscriber's own pool (POOL_FACTOR x their max_items): the same picks whoever else is ranked with
    # them
    sorted_scores[np.arange(pool)[None, :] >= np.minimum(n, POOL_FACTOR * max_items)[:, None]] = -np.inf
    chosen, by_weight = weighed(sorted_scores, top_best, top_rel > 0, max_items, k, topic_weights(part))
    top = np.take_along_axis(top, chosen, axis=1)
    return _Chosen(
        top,
        np.take_along_axis(sorted_scores, chosen, axis=1).tolist(),
        np.take_along_axis(top_rel, chosen, axis=1).tolist(),
        np.take_along_axis(top_best, chosen, axis=1).tolist(),
        by_weight.tolist() if by_weight is not None else None,
    )


def _write_picks(
    corpus: Corpus,
    phrases: _Phrases,
    part: Sequence[Profile],
    scored: _Scored,
    chosen: _Chosen,
    explain_cache: dict[tuple[str, int, str], Reason],
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
            by = next((phrases.followed[a][d] for a in pr.authors if d in phrases.followed.get(a, ())),
                      None) if pr.authors else None
            if not rows and not liking:
                reason = Reason("trending", upvotes=p.upvotes, author=by)
            elif rel[j] > 0:
                best = best_of[j]
                key = (names[rows[best]], d, labels[best])
                if (explained := explain_cache.get(key)) is None:
                    explained = explain_cache[key] = _explain_pick(corpus, phrases, rows[best], d,
                                                                   labels[best])
                others = tuple(labels[o] for o, hit in enumerate(hits[j]) if hit and o != best)
                reason = replace(explained, also=others, author=by) if others or by else explained
                if chosen.weighted is not None and chosen.weighted[i][j]:  # the weight gave it its place
                    reason = with_weight(reason, pr, best)
            else:
                reason = Reason("liked", liked_title=_closest_liked(corpus, phrases, fb_rows, liking, d),
                                author=by)
            picks.append(_pick(p.id, s, reason))


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


def _pick(paper_id: int, score: float, reason: Reason) -> Pick:
    """A pick with its reason, as data and in words (digest.wording)."""
    return Pick(paper_id, score, topic=reason.topic, terms=list(reason.terms), why=why(reason), reason=reason)


def _closest_liked(corpus: Corpus, phrases: _Phrases, fb_rows: Sequence[int], liking: Sequence[int],
                   d: int) -> str | None:
    """The title of the liked paper row d is closest to (None without one)."""
    if not liking or phrases.fb_sim is None:
        return None
    sims = phrases.fb_sim[liking, d]
    return corpus.papers[fb_rows[liking[int(np.argmax(sims))]]].title


def _explain_pick(corpus: Corpus, phrases: _Phrases, t: int, d: int, label: str) -> Reason:
    """Why paper row d matches topic row t: its matched words, else (hybrid) its closest sentence."""
    matched = corpus.index.matched(phrases.topic_names[t], phrases.Q, t, d)
    if not matched and phrases.topic_vecs is not None and corpus.vectors is not None:
        k = corpus.vectors.best_sentence(phrases.topic_vecs[t], d)
        said = sentences(corpus.index.docs[d][1])
        return Reason("meaning", topic=label, quote=said[k] if k is not None and k < len(said) else None)
    return Reason("topic", topic=label, terms=tuple(matched))


def corpus_relevance(corpus: Corpus, topics: Sequence[str], topic_vecs: np.ndarray | None = None,
                     out: np.ndarray | None = None) -> np.ndarray:
    """(topics x papers) `topic_relevance` against a corpus: hybrid when it holds paper vectors
    (`topic_vecs`, the topics' embeddings, computed when not given), else lexical; into `out` if given.
    A block of topics at a time (CELLS_PER_CHUNK cells): the working set beside the result stays bounded;
    each row is the same as when computed alone."""
    topics = list(topics)
    out = np.zeros((len(topics), corpus.n), np.float32) if out is None else out
    vecs = corpus.vectors
    if vecs is not None and topic_vecs is None:
        topic_vecs = vecs.embed_topics(topics)  # the papers' model
    step = max(1, CELLS_PER_CHUNK // max(corpus.n, 1))
    for lo in range(0, len(topics), step):
        hi = min(lo + step, len(topics))
        sim = vecs.similarity(topic_vecs[lo:hi]) if vecs is not None else None
        out[lo:hi] = topic_relevance(corpus.index, topics[lo:hi], sim)
    return out


def topic_relevance(index: LexicalIndex, topics: Sequence[str],
                    semantic: np.ndarray | None = None) -> np.ndarray:
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


def _feedback(corpus: Corpus, part: Sequence[Profile], score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fuse each subscriber's feedback model into their scores (in place); return the models'
    z-scores and where they make a paper eligible without a topic match (far above their typical
    paper, for those who liked some)."""
    pos = corpus.pos
    rated = [([pos[j] for j in pr.liked if j in pos], [pos[j] for j in pr.disliked if j in pos])
             for pr in part]
    return feedback.apply(score, rated, corpus.features, corpus.models)


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


def _key(phrase: str) -> str:
    return " ".join(phrase.lower().split())

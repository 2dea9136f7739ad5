"""Batched ranking of candidate papers for many subscribers at once.

One call indexes the papers once, scores every distinct topic with one sparse product, and then walks
the subscribers in chunks of dense numpy rows: best topic per paper, blend with trending, feedback
(Rocchio-style similarity to liked/disliked papers), exclusions, candidates, near-duplicate collapse,
top-k. Explanations are built only for the picks and cached per (topic, paper).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

import numpy as np
import scipy.sparse as sp

from digest.ranking.index import LexicalIndex, Params
from digest.ranking.semantic import PaperVectors, embed_topics, sentences
from digest.ranking.text import normalise_title
from digest.records import Paper, Pick, Profile, as_utc, utcnow

log = logging.getLogger(__name__)

HALF_LIFE_DAYS = 7.0  # trending: a paper's heat halves every week
LIKE_WEIGHT = 0.5  # Rocchio beta: cosine to the liked papers' centroid, added to relevance
DISLIKE_WEIGHT = 0.5  # Rocchio gamma
LIKE_ONLY_MIN_SIM = 0.2  # a paper matching no topic is still eligible when this close to a liked one
MIN_COVERAGE = 0.5  # a paper must contain at least this share of a topic's word IDF mass
DUPLICATE_COSINE = 0.9  # abstracts this similar are the same paper
SEMANTIC_WEIGHT = 0.5  # hybrid: relevance = (lexical + 0.5 * semantic) / 2, semantic in -2..2 (see semantic.py)
SEMANTIC_MIN = 1.0  # a paper matching a topic in meaning only is eligible from this semantic score up
POOL_FACTOR = 4  # each subscriber's picks are chosen among their best POOL_FACTOR x max_items papers
CELLS_PER_CHUNK = 4_000_000  # bounds the dense working set (~16 MB per float32 matrix)


def trending(
    papers: Sequence[Paper], k: int, *, exclude: Collection[int] = (), now: datetime | None = None
) -> list[Pick]:
    """The k hottest papers (upvotes, decayed by age), one per near-duplicate group."""
    if not papers or k <= 0:
        return []
    heat = trend_scores(papers, now)
    plain = LexicalIndex([(p.title, p.abstract) for p in papers], Params(acronyms="off"))
    groups = _group_of(papers, plain.unit_rows(abstracts_only=True))
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


def trend_scores(papers: Sequence[Paper], now: datetime | None = None) -> np.ndarray:
    """Heat in 0..1: (1 + log(1 + upvotes)) halved every HALF_LIFE_DAYS since published/first seen."""
    now = as_utc(now or utcnow())
    heat = np.empty(len(papers))
    for i, p in enumerate(papers):
        when = p.published_at or p.first_seen_at
        age = max(0.0, (now - as_utc(when)).total_seconds() / 86400) if when else 0.0
        heat[i] = (1 + math.log1p(max(p.upvotes, 0))) * 0.5 ** (age / HALF_LIFE_DAYS)
    return (heat / heat.max()).astype(np.float32) if len(heat) else heat


def rank(
    papers: Sequence[Paper],
    profiles: Sequence[Profile],
    *,
    candidates: Mapping[int, Collection[int]] | None = None,
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
    """
    out: dict[int, list[Pick]] = {pr.subscriber_id: [] for pr in profiles}
    if not papers or not profiles:
        return out
    started = time.perf_counter()
    index = LexicalIndex([(p.title, p.abstract) for p in papers])
    n = len(papers)
    pos = {p.id: i for i, p in enumerate(papers)}
    heat = trend_scores(papers, now)
    unit = index.unit_rows()
    group = _group_of(papers, index.unit_rows(abstracts_only=True))
    dup_groups = [np.flatnonzero(group == g) for g in np.flatnonzero(np.bincount(group) > 1)]

    # Every distinct topic and exclude phrase is scored once for everybody.
    topic_row: dict[str, int] = {}
    for pr in profiles:
        for t in pr.topics:
            if t.strip():
                topic_row.setdefault(_key(t), len(topic_row))
    topic_names = list(topic_row)
    topic_vecs = embed_topics(topic_names) if vectors is not None else None
    rel_all = topic_relevance(index, topic_names, None if topic_vecs is None else vectors.similarity(topic_vecs))
    Q = index.query_matrix(topic_names)[0]
    rel_all = np.vstack([rel_all, np.zeros((1, n), np.float32)])  # padding row for short topic lists
    excl_row: dict[str, int] = {}
    for pr in profiles:
        for x in pr.excludes:
            if x.strip():
                excl_row.setdefault(_key(x), len(excl_row))
    excluded = index.presence(list(excl_row)) if excl_row else np.zeros((0, n), bool)

    # Feedback: similarity of every paper to the papers anyone liked or disliked, computed once.
    fb_docs = sorted({pos[i] for pr in profiles for i in (*pr.liked, *pr.disliked) if i in pos})
    fb_col = {d: j for j, d in enumerate(fb_docs)}
    fb_sim = np.asarray((unit[fb_docs] @ unit.T).todense(), np.float32) if fb_docs else None

    explain_cache: dict[tuple[int, int, str], tuple[list[str], str]] = {}
    chunk = max(16, CELLS_PER_CHUNK // n)
    for start in range(0, len(profiles), chunk):
        part = profiles[start : start + chunk]
        labels = [[t.strip() for t in pr.topics if t.strip()] for pr in part]
        rows = [[topic_row[_key(t)] for t in ts] for ts in labels]
        # best topic per (subscriber, paper): a running max over the subscribers' topic slots
        rel = np.zeros((len(part), n), np.float32)
        best_topic = np.zeros((len(part), n), np.int16)
        for j in range(max(len(r) for r in rows)):
            slot = rel_all[[r[j] if j < len(r) else len(topic_names) for r in rows]]
            better = slot > rel
            np.copyto(rel, slot, where=better)
            best_topic[better] = j
            del slot, better
        has_topics = np.array([bool(r) for r in rows])
        score = rel * np.float32(1 - trending_weight)
        score += np.float32(trending_weight) * heat[None, :]
        score[~has_topics] = heat[None, :]
        eligible = rel > 0
        eligible[~has_topics] = True
        if fb_sim is not None:
            like, dislike = _feedback(part, pos, fb_col, fb_sim, n)
            score += LIKE_WEIGHT * like - DISLIKE_WEIGHT * dislike
            eligible |= like >= LIKE_ONLY_MIN_SIM
        for i, pr in enumerate(part):
            if pr.excludes:
                xs = [excl_row[_key(x)] for x in pr.excludes if x.strip()]
                if xs:
                    eligible[i] &= ~excluded[xs].any(axis=0)
            if pr.liked or pr.disliked:
                eligible[i, [pos[j] for j in (*pr.liked, *pr.disliked) if j in pos]] = False
            if candidates is not None and pr.subscriber_id in candidates:
                allowed = np.zeros(n, bool)
                allowed[[pos[j] for j in candidates[pr.subscriber_id] if j in pos]] = True
                eligible[i] &= allowed
        score[~eligible] = -np.inf
        for members in dup_groups:  # keep only the best member of each near-duplicate group
            sub = score[:, members]
            keep = sub.argmax(axis=1)
            mask = np.ones_like(sub, dtype=bool)
            mask[np.arange(len(part)), keep] = False
            sub[mask] = -np.inf
            score[:, members] = sub
        k = min(n, max(pr.max_items for pr in part))
        if k <= 0:
            continue
        pool = min(n, POOL_FACTOR * k)  # the best few times k papers; the picks come from these
        top = (
            np.argpartition(-score, pool - 1, axis=1)[:, :pool] if pool < n else np.tile(np.arange(n), (len(part), 1))
        )
        top_scores = np.take_along_axis(score, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top_rel = np.take_along_axis(rel, top, axis=1)
        top_best = np.take_along_axis(best_topic, top, axis=1)
        chosen = _balanced(np.take_along_axis(top_scores, order, axis=1), top_best, top_rel > 0,
                           np.array([pr.max_items for pr in part]), k)
        top = np.take_along_axis(top, chosen, axis=1)
        top_scores = np.take_along_axis(score, top, axis=1).tolist()
        top_rel = np.take_along_axis(top_rel, chosen, axis=1).tolist()
        top_best = np.take_along_axis(top_best, chosen, axis=1).tolist()
        for i, pr in enumerate(part):
            picks = out[pr.subscriber_id]
            for j, d in enumerate(top[i, : pr.max_items].tolist()):
                s = top_scores[i][j]
                if s == -np.inf:
                    break
                p = papers[d]
                if not rows[i]:
                    picks.append(Pick(p.id, s, why=_trending_why(p)))
                elif top_rel[i][j] > 0:
                    t = rows[i][top_best[i][j]]
                    label = labels[i][top_best[i][j]]
                    key = (t, d, label)
                    if key not in explain_cache:
                        explain_cache[key] = _explain(index, topic_names[t], Q[t], d, label)
                        if not explain_cache[key][0] and topic_vecs is not None:
                            explain_cache[key] = _explain_meaning(vectors, topic_vecs[t], p, d, label)
                    matched, why = explain_cache[key]
                    others = [labels[i][o] for o, r in enumerate(rows[i])
                              if o != top_best[i][j] and rel_all[r, d] > 0]
                    if others:
                        why += "; also " + ", ".join(f"“{o}”" for o in others)
                    picks.append(Pick(p.id, s, topic=label, terms=list(matched), why=why))
                else:
                    picks.append(Pick(p.id, s, why="Similar to papers you liked"))
    log.info(
        "ranked %d papers for %d subscribers (%d topics, %d picks) in %.2fs",
        n,
        len(profiles),
        len(topic_names),
        sum(map(len, out.values())),
        time.perf_counter() - started,
    )
    return out


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


def _feedback(
    part: Sequence[Profile], pos: dict[int, int], fb_col: dict[int, int], fb_sim: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean cosine of every paper to each subscriber's liked papers and to their disliked papers."""
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
    index: LexicalIndex, query: str, q_row: sp.csr_matrix, d: int, label: str
) -> tuple[list[str], str]:
    matched = index.matched(query, q_row, d)
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

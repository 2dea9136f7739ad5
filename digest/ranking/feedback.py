"""What a subscriber's feedback does to their ranking: a linear model per subscriber, scored in the batch.

The papers a subscriber liked ("more like this", and a seeded profile's own papers) and disliked ("less
like this") train a linear SVM over the papers' features (`features`): their BM25 rows at unit length
(lexical) and, when the papers are embedded, their MiniLM vectors (semantic), weighted LEXICAL_SHARE to
1 - LEXICAL_SHARE, so the features' dot product is the similarity of `similarity_rows`. As in
arxiv-sanity-lite, the liked papers are the positives and every other paper of the corpus is a negative:
the background they stand out from (the classes balanced, so a few likes weigh as much as the corpus),
and a disliked paper is a negative that counts DISLIKE_WEIGHT times a background paper. To the SVM's
score is added, at QUERY_WEIGHT, a relevance-feedback query (as RM3 / Rocchio on BM25): the liked
papers' mean BM25 row cut to its QUERY_TERMS heaviest terms, scored by the papers' BM25 rows (each part
over its spread on the background papers; still one weight vector). With dislikes only, the model is
minus the likeness to the disliked papers (their mean row).

A model is one weight vector, so a whole chunk of subscribers is scored with one product (the papers'
features times the chunk's weight vectors); its score is z-scored over the corpus (leaving out the
subscriber's own rated papers) and added to the ranking score scaled by that score's own spread
(`fuse`), so it weighs the same for every subscriber, topic and corpus. Liked papers may come from
anywhere (clicks, a subscriber's own papers): the model only sees the paper ids of the `Profile`.
Models are fitted when a ranking needs them and kept per (liked, disliked) in the corpus's cache: a
change of feedback is a new key, so a subscriber's model is refitted exactly when their feedback changes.
Cost: one fit over the corpus per distinct feedback (tens of milliseconds for a few thousand papers).
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from digest.ranking.semantic import PaperVectors

# similarity = share x BM25 cosine + (1 - share) x MiniLM cosine (BM25 alone without vectors)
LEXICAL_SHARE = 0.5
SHARES = (0.75, 0.25, 0.0)  # the models' features: tf-idf, BM25 and MiniLM cosines at these shares
BACKGROUND = 600  # the negatives: this many papers spread evenly over the corpus (all, in a smaller one)
SVM_C = 0.01  # the SVM's margin penalty (arxiv-sanity-lite's: a wide margin, hundreds of negatives)
DISLIKE_WEIGHT = 1.0  # a disliked paper counts as this many background papers among the negatives
QUERY_TERMS = 20  # the feedback query: the liked papers' heaviest BM25 terms (mean row), this many
QUERY_WEIGHT = 0.25  # ... added at this many of the SVM score's spreads (measured: see README)
# the model's z-score is added at this many standard deviations of the ranking score (measured: see README)
WEIGHT = 0.25
ONLY_MIN_Z = 2.5  # a paper matching no topic is still eligible from this model z-score up

Model = tuple[tuple[int, ...], np.ndarray]  # the rated papers' rows (liked first), the weight vector


def similarity_rows(unit: sp.csr_matrix, vectors: PaperVectors | None, rows: Sequence[int]) -> np.ndarray:
    """(rows x papers) similarity of the given papers to every paper (why lines, likeness)."""
    lexical = np.asarray((unit[list(rows)] @ unit.T).todense(), np.float32)
    if vectors is None:
        return lexical
    semantic = vectors.whole[list(rows)] @ vectors.whole.T
    return (LEXICAL_SHARE * lexical + (1 - LEXICAL_SHARE) * semantic).astype(np.float32)


def tfidf(docs: Sequence[tuple[str, str]]) -> sp.csr_matrix:
    """arxiv-sanity-lite's features: tf-idf of words and word pairs, sublinear tf, l2 rows, English
    stop words out; from 1,000 papers up also its document frequency cut-offs (a term in at least 5
    papers and at most 10% of them), below that every term (papers x terms; no column without terms)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    large = len(docs) >= 1000
    vectoriser = TfidfVectorizer(
        strip_accents="unicode", lowercase=True, analyzer="word", stop_words="english",
        token_pattern=r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b", ngram_range=(1, 2), max_features=20000, norm="l2",
        use_idf=True, smooth_idf=True, sublinear_tf=True, max_df=0.1 if large else 1.0,
        min_df=5 if large else 1, dtype=np.float32)
    try:
        return vectoriser.fit_transform([f"{t}. {a}" for t, a in docs]).tocsr()
    except ValueError:  # no term at all (nothing but stop words, say)
        return sp.csr_matrix((len(docs), 0), dtype=np.float32)


@dataclass(frozen=True)
class Features:
    """(papers x features) of the feedback models: the papers' BM25 rows at unit length (stems and
    phrases), their MiniLM vectors when they are embedded, and their `tfidf` rows last (`words` columns),
    side by side at the shares of SHARES (the dot product of two papers' rows: those shares of the
    three cosines). The BM25 rows are the first `bm25` columns, times `bm25_scale`."""

    matrix: sp.csr_matrix
    words: int
    bm25: int
    bm25_scale: float


def features(docs: Sequence[tuple[str, str]], unit: sp.csr_matrix, vectors: PaperVectors | None) -> Features:
    """The `Features` of a corpus's papers (`unit`: its BM25 rows, `vectors`: its embeddings or None)."""
    words, bm25, semantic = SHARES
    if vectors is None:
        words, bm25, semantic = words / (words + bm25), bm25 / (words + bm25), 0.0
    parts = [unit * np.float32(np.sqrt(bm25))]
    if semantic > 0 and vectors is not None:
        parts.append(sp.csr_matrix(vectors.whole.astype(np.float32) * np.float32(np.sqrt(semantic))))
    terms = tfidf(docs)
    parts.append(terms * np.float32(np.sqrt(words)))
    return Features(sp.hstack(parts, format="csr", dtype=np.float32), terms.shape[1], unit.shape[1],
                    float(np.sqrt(bm25)))


def query(features: Features, liked: Sequence[int]) -> np.ndarray:
    """The liked papers' relevance-feedback query as a weight vector over the features: their mean
    BM25 row cut to its QUERY_TERMS heaviest terms, on the BM25 columns (its product with a paper's
    features: that query's dot product with the paper's BM25 row); zeros without BM25 columns."""
    w = np.zeros(features.matrix.shape[1], np.float32)
    if not features.bm25 or features.bm25_scale <= 0 or not liked:
        return w
    q = np.asarray(features.matrix[list(liked), :features.bm25].mean(axis=0)).ravel()
    if np.count_nonzero(q) > QUERY_TERMS:
        q[np.argsort(-q, kind="stable")[QUERY_TERMS:]] = 0
    w[:features.bm25] = q / features.bm25_scale**2
    return w


def fit(features: Features, liked: Sequence[int], disliked: Sequence[int]) -> np.ndarray:
    """The weight vector of one subscriber's model (see the module's docstring); zeros without feedback."""
    from sklearn.svm import LinearSVC  # here, not at the top: every command and sending process would load it

    X = features.matrix
    n = X.shape[0]
    if not liked:  # nothing to stand out: minus the likeness (BM25, MiniLM) to what they disliked
        w = -np.asarray(X[list(disliked)].mean(axis=0)).ravel() if disliked else np.zeros(X.shape[1])
        w[X.shape[1] - features.words:] = 0
        return w.astype(np.float32)
    if len(liked) >= n or not X.shape[1]:
        return np.zeros(X.shape[1], np.float32)
    background = np.linspace(0, n - 1, min(n, BACKGROUND)).astype(int)
    rows = np.unique(np.r_[background, liked, disliked]).astype(int)
    y = np.zeros(n)
    y[list(liked)] = 1
    weight = np.ones(n)
    weight[list(disliked)] = DISLIKE_WEIGHT
    svm = LinearSVC(C=SVM_C, class_weight="balanced", max_iter=10000, tol=1e-6, random_state=0)
    svm.fit(X[rows], y[rows], sample_weight=weight[rows])
    w, q = svm.coef_[0], query(features, liked)
    # each part over its spread on the background papers the reader did not rate
    background = np.setdiff1d(background, np.r_[liked, disliked])
    spread = [float(np.std(X[background] @ v)) if len(background) > 1 else 0.0 for v in (w, q)]
    if spread[0] > 1e-12 and spread[1] > 1e-12:
        w = w / spread[0] + QUERY_WEIGHT * q / spread[1]
    return w.astype(np.float32)


def models(feedback: Sequence[tuple[Sequence[int], Sequence[int]]], X: Features,
           cache: MutableMapping[tuple, Model]) -> list[Model]:
    """Each subscriber's model from their (liked rows, disliked rows) of the corpus (`X`: its
    features). Papers rated both ways count as liked. Fitted once per distinct feedback, kept in
    `cache`."""
    out = []
    for liked, disliked in feedback:
        like = tuple(dict.fromkeys(liked))
        dislike = tuple(r for r in dict.fromkeys(disliked) if r not in set(like))
        key = (like, dislike)
        if key not in cache:
            cache[key] = ((*like, *dislike), fit(X, like, dislike))
        out.append(cache[key])
    return out


def model_scores(fitted: Sequence[Model], features: Features) -> tuple[np.ndarray, np.ndarray]:
    """(subscribers x papers) model scores, z-scored per row, for a chunk in one product; and which
    rows have a model (a row without feedback is all zeros)."""
    X = features.matrix
    weights = np.stack([w for _, w in fitted]).astype(np.float32) if fitted else np.zeros((0, X.shape[1]))
    raw = np.asarray((X @ weights.T).T, dtype=np.float32)
    own = np.zeros(raw.shape, bool)  # a row's own rated papers: outliers of its model, never picked
    own[[i for i, (rated, _) in enumerate(fitted) for _ in rated],
        [d for rated, _ in fitted for d in rated]] = True
    return zscore(raw, ~own), np.array([bool(rated) for rated, _ in fitted])


def zscore(x: np.ndarray, among: np.ndarray | None = None) -> np.ndarray:
    """Each row minus its mean, over its standard deviation, both taken over the row's papers that
    `among` marks (default: all); a constant row becomes 0."""
    w = np.ones(x.shape, np.float32) if among is None else among.astype(np.float32)
    count = np.maximum(w.sum(axis=1, keepdims=True), 1)
    mean = (x * w).sum(axis=1, keepdims=True) / count
    sd = np.sqrt((((x - mean) ** 2) * w).sum(axis=1, keepdims=True) / count)
    return ((x - mean) / np.where(sd > 1e-9, sd, np.inf)).astype(np.float32)


def fuse(score: np.ndarray, z: np.ndarray, has: np.ndarray) -> np.ndarray:
    """The ranking score with the model's z-score added at WEIGHT standard deviations of that
    score (per row, over the papers; rows without a model unchanged). In place; returns `score`."""
    if has.any():
        spread = score[has].std(axis=1, keepdims=True)
        score[has] += np.float32(WEIGHT) * spread * z[has]
    return score


def apply(score: np.ndarray, rated: Sequence[tuple[Sequence[int], Sequence[int]]], X: Features,
          cache: MutableMapping[tuple, Model]) -> tuple[np.ndarray, np.ndarray]:
    """Fuse each row's model, from its (liked rows, disliked rows), into `score` (in place); return
    the models' z-scores and where the model makes a paper eligible without a topic match: far above
    the row's typical paper, for a row with liked papers. The one rule the planner and the eval share."""
    fitted = models(rated, X, cache)
    z, has = model_scores(fitted, X)
    fuse(score, z, has)
    liked_some = np.array([bool(like) for like, _ in rated])
    return z, (z >= ONLY_MIN_Z) & liked_some[:, None]

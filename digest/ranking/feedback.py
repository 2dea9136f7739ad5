"""What a subscriber's feedback does to their ranking: a small model per subscriber, scored in the batch.

The papers a subscriber liked ("more like this") and disliked ("less like this") train a linear SVM
over the papers' features: their BM25 rows at unit length (lexical) and, when the papers are embedded,
their MiniLM vectors (semantic), weighted LEXICAL_SHARE to 1 - LEXICAL_SHARE. The SVM is fitted in its
dual form, on the (rated x rated) similarities of the subscriber's own rated papers, so a model is one
coefficient per rated paper (its weight vector is the coefficients times those papers' features), and
a whole chunk of subscribers is scored with one product: (subscribers x rated papers) coefficients
times the (rated papers x papers) similarity rows that the batch computes once per distinct rated
paper (`similarity_rows`). With only one class the model falls back to what it has: the mean similarity
to the liked papers, or minus the mean similarity to the disliked ones.

A model's score is z-scored over the corpus and added to the ranking score scaled by that score's own
spread (`fuse`), so it weighs the same for every subscriber, topic and corpus. Liked papers may come
from anywhere (clicks, a subscriber's own papers): the model only sees the paper ids of the `Profile`.
Models are fitted when a ranking needs them and kept per (liked, disliked) in the corpus's cache: a
change of feedback is a new key, so a subscriber's model is refitted exactly when their feedback changes.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence

import numpy as np
import scipy.sparse as sp

from digest.ranking.semantic import PaperVectors

# similarity = share x BM25 cosine + (1 - share) x MiniLM cosine (BM25 alone without vectors)
LEXICAL_SHARE = 0.5
SVM_C = 1.0  # the SVM's margin penalty (the rated papers are few: any C >= 1 separates them)
# the model's z-score is added at this many standard deviations of the ranking score (measured: see README)
WEIGHT = 0.25
ONLY_MIN_Z = 2.5  # a paper matching no topic is still eligible from this model z-score up

Model = tuple[tuple[int, ...], np.ndarray]  # the rated papers' rows (liked first), one coefficient each


def similarity_rows(unit: sp.csr_matrix, vectors: PaperVectors | None, rows: Sequence[int]) -> np.ndarray:
    """(rows x papers) similarity of the given papers to every paper: the kernel of the SVM."""
    lexical = np.asarray((unit[list(rows)] @ unit.T).todense(), np.float32)
    if vectors is None:
        return lexical
    semantic = vectors.whole[list(rows)] @ vectors.whole.T
    return (LEXICAL_SHARE * lexical + (1 - LEXICAL_SHARE) * semantic).astype(np.float32)


def fit(liked: Sequence[int], disliked: Sequence[int], gram: np.ndarray) -> np.ndarray:
    """One coefficient per rated paper (liked first, then disliked), from their (rated x rated)
    similarities: the dual coefficients of an SVM, or a centroid when only one class is there."""
    n_like, n_dislike = len(liked), len(disliked)
    if n_like and n_dislike:
        from sklearn.svm import SVC  # here, not at the top: every command and sending process would load it

        y = np.r_[np.ones(n_like), -np.ones(n_dislike)]
        svm = SVC(kernel="precomputed", C=SVM_C).fit(gram, y)
        alpha = np.zeros(n_like + n_dislike)
        alpha[svm.support_] = svm.dual_coef_[0]
        return alpha
    if n_like:
        return np.full(n_like, 1 / n_like)
    return np.full(n_dislike, -1 / n_dislike) if n_dislike else np.zeros(0)


def models(feedback: Sequence[tuple[Sequence[int], Sequence[int]]], col: Mapping[int, int], sim: np.ndarray,
           cache: MutableMapping[tuple, Model]) -> list[Model]:
    """Each subscriber's model from their (liked rows, disliked rows) of the corpus; `col` maps a
    rated row to its row of `sim` (rated x papers similarities). Papers rated both ways count as
    liked. Fitted once per distinct feedback, kept in `cache`."""
    out = []
    for liked, disliked in feedback:
        like = tuple(dict.fromkeys(liked))
        dislike = tuple(r for r in dict.fromkeys(disliked) if r not in set(like))
        key = (like, dislike)
        if key not in cache:
            rated = [*like, *dislike]
            gram = sim[np.ix_([col[r] for r in rated], rated)].astype(np.float64)
            cache[key] = (tuple(rated), fit(like, dislike, gram))
        out.append(cache[key])
    return out


def model_scores(fitted: Sequence[Model], col: Mapping[int, int],
                 sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(subscribers x papers) model scores, z-scored per row, for a chunk in one sparse product;
    and which rows have a model (a row without feedback is all zeros)."""
    r, c, v = [], [], []
    for i, (rated, alpha) in enumerate(fitted):
        r += [i] * len(rated)
        c += [col[d] for d in rated]
        v += alpha.tolist()
    A = sp.csr_matrix((v, (r, c)), shape=(len(fitted), sim.shape[0]), dtype=np.float32)
    raw = np.asarray(A @ sim, dtype=np.float32)
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


def apply(score: np.ndarray, rated: Sequence[tuple[Sequence[int], Sequence[int]]], sim: np.ndarray,
          col: Mapping[int, int], cache: MutableMapping[tuple, Model]) -> np.ndarray:
    """Fuse each row's model, from its (liked rows, disliked rows), into `score` (in place), and
    return where the model makes a paper eligible without a topic match: far above the row's typical
    paper, for a row with liked papers. The one rule the planner and the eval share."""
    fitted = models(rated, col, sim, cache)
    z, has = model_scores(fitted, col, sim)
    fuse(score, z, has)
    liked_some = np.array([bool(like) for like, _ in rated])
    return (z >= ONLY_MIN_Z) & liked_some[:, None]

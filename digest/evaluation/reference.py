"""The reference methods of the month of digests (FEEDBACK.md), computed on the set at hand and on the
project's base, so that they move with the data as the project's own rows do.

- arxiv-sanity-lite: its per-tag linear SVM (LinearSVC, C=0.01, balanced classes) on tf-idf of 1-2
  grams (sublinear tf, its vectoriser settings), the reader's liked papers against every other paper.
  A phrase reader: that SVM's score z-scored and added to the z-scored base relevance; a seeded reader
  (library + likes as the positives): the SVM alone, as arxiv-sanity-lite ranks a library.
- Rocchio on the semantic vectors: the query moved by +0.75 x the liked papers' centroid and -0.25 x
  the disliked ones'. A phrase reader: the hybrid base with the moved query in place of the phrase's
  embedding; a seeded reader: cosine to the library's centroid so moved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from digest.evaluation.data import Dataset
from digest.ranking.corpus import Corpus
from digest.ranking.feedback import tfidf
from digest.ranking.ranker import corpus_relevance, topic_relevance

if TYPE_CHECKING:
    from digest.evaluation.month import Reader

ASL_C = 0.01
ROCCHIO_LIKED, ROCCHIO_DISLIKED = 0.75, 0.25
Scorer = Callable[["Reader"], np.ndarray]


def zscore(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 1e-12 else np.zeros_like(x)


def svm_scores(features: sp.csr_matrix, positives: Sequence[int]) -> np.ndarray | None:
    """arxiv-sanity-lite's SVM: the positives against every other paper; None without a positive."""
    from sklearn.svm import LinearSVC

    if not positives:
        return None
    y = np.zeros(features.shape[0])
    y[list(positives)] = 1
    svm = LinearSVC(class_weight="balanced", C=ASL_C, max_iter=10000, tol=1e-6)
    return svm.fit(features, y).decision_function(features)


class Methods:
    """The reference scorers for one eval set and its corpus (features computed once, on first use)."""

    def __init__(self, data: Dataset, corpus: Corpus, topics: Sequence[str]) -> None:
        self.data, self.corpus = data, corpus
        self.base = dict(zip(topics, corpus_relevance(corpus, topics), strict=True))

    @cached_property
    def features(self) -> sp.csr_matrix:
        return tfidf(self.data.docs)

    def for_reader(self, kind: str) -> dict[str, tuple[str, Scorer]]:
        phrase = kind != "seeded"
        out = {"arxiv-sanity-lite": (
            "reference: LinearSVC(C=0.01) on tf-idf 1-2 grams, "
            + ("liked vs all, z-scored and added to the z-scored base" if phrase
               else "library + likes vs all, alone"),
            self.asl_phrase if phrase else self.asl_seeded)}
        if self.corpus.vectors is not None:
            out["rocchio"] = (
                "reference: Rocchio on the semantic vectors (+0.75 liked, -0.25 disliked centroid), "
                + ("the moved query in the hybrid base" if phrase
                   else "cosine to the moved library centroid"),
                self.rocchio_phrase if phrase else self.rocchio_seeded)
        return out

    def asl_phrase(self, r: Reader) -> np.ndarray:
        base = zscore(self.base[r.topic].astype(np.float64))
        svm = svm_scores(self.features, r.liked)
        return base if svm is None else base + zscore(svm)

    def asl_seeded(self, r: Reader) -> np.ndarray:
        svm = svm_scores(self.features, r.seeds + r.liked)
        assert svm is not None  # the library is never empty
        return svm

    def _moved(self, start: np.ndarray, r: Reader) -> np.ndarray:
        whole = self.corpus.vectors.whole  # type: ignore[union-attr]
        q = start.astype(np.float64).copy()
        if r.liked:
            q += ROCCHIO_LIKED * whole[r.liked].mean(axis=0)
        if r.disliked:
            q -= ROCCHIO_DISLIKED * whole[r.disliked].mean(axis=0)
        return (q / max(np.linalg.norm(q), 1e-12)).astype(np.float32)

    def rocchio_phrase(self, r: Reader) -> np.ndarray:
        vectors = self.corpus.vectors
        assert vectors is not None
        q = self._moved(vectors.embed_topics([r.topic])[0], r)
        return topic_relevance(self.corpus.index, [r.topic], vectors.similarity(q[None, :]))[0]

    def rocchio_seeded(self, r: Reader) -> np.ndarray:
        vectors = self.corpus.vectors
        assert vectors is not None
        q = self._moved(vectors.whole[r.seeds].mean(axis=0), r)
        return vectors.whole @ q

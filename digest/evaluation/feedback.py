"""Does feedback teach the ranker? One round of the simulated reader (/work/shared/eval/FEEDBACK.md):
each topic's reader judges digest 1, and digest 2 is measured for each way the ranker can use it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from digest.evaluation.data import Dataset, Result, average_precision_at, ndcg_at, precision_at

# Reference rows on iclr2021_paperlist.tsv (59 topics), z(BM25) + z(MiniLM) as the ranker (FEEDBACK.md).
FEEDBACK_REFERENCE: dict[str, tuple[float, float, float]] = {
    "none": (0.403, 0.376, 0.305),
    "Rocchio on MiniLM (+0.75 liked, -0.25 disliked)": (0.400, 0.381, 0.305),
    "arxiv-sanity-lite LinearSVC on tf-idf, alone": (0.163, 0.144, 0.058),
    "that SVM, z-scored, added to the score": (0.433, 0.412, 0.302),
    "logistic regression on MiniLM, z-scored, added": (0.391, 0.376, 0.276),
}
SHOWN = 10  # papers in digest 1


@dataclass(frozen=True)
class FeedbackMethod:
    description: str
    # the model's features: None = no feedback, True = lexical + MiniLM (when installed)
    semantic: bool | None


FEEDBACK_METHODS: dict[str, FeedbackMethod] = {
    "none": FeedbackMethod("feedback ignored", None),
    "default": FeedbackMethod("SVM (tf-idf + BM25) + liked papers' top terms", True),
    "lexical": FeedbackMethod("the same, no vectors for dislikes alone", False),
}


@dataclass
class Reader:
    """One simulated subscriber: their topic, what digest 1 showed them and how they judged it."""

    topic: str
    relevant: np.ndarray  # bool per paper
    shown: np.ndarray  # paper rows of digest 1, best first
    liked: list[int]
    disliked: list[int]


def simulated_readers(data: Dataset, topics: Sequence[str], first: np.ndarray) -> list[Reader]:
    """Digest 1 of each topic (its top SHOWN by `first`, ties in file order), judged by the labels:
    "more like this" on each shown paper that carries the topic, "less like this" on the others."""
    readers = []
    for i, topic in enumerate(topics):
        rel = data.relevant(topic)
        shown = np.lexsort((np.arange(len(rel)), -first[i]))[:SHOWN]
        readers.append(Reader(topic, rel, shown, [int(d) for d in shown if rel[d]],
                              [int(d) for d in shown if not rel[d]]))
    return readers


def second_digest(reader: Reader, score: np.ndarray) -> tuple[float, float, float]:
    """nDCG@10, P@10, MAP@100 of ranking the papers digest 1 did not show by `score`."""
    rest = np.ones(len(score), bool)
    rest[reader.shown] = False
    s, rel = score[rest], reader.relevant[rest]
    ranked = rel[np.lexsort((np.arange(len(s)), -s))]
    n = int(rel.sum())
    return ndcg_at(ranked, n), precision_at(ranked), average_precision_at(ranked, n)


def evaluate_feedback(data: Dataset, topics: Sequence[str], methods: Sequence[str]) -> list[Result]:
    """Digest 2 of every simulated reader under each feedback method, averaged over the topics.

    Digest 1 is the default ranker's relevance; digest 2 is that relevance with the reader's
    feedback fused in by the planner's own rule (feedback.apply), papers it leaves ineligible last."""
    from digest.ranking import feedback, semantic
    from digest.ranking.ranker import build_corpus, corpus_relevance
    from digest.records import Paper

    topics = [t for t in topics if data.relevant(t).any()]
    vectors = semantic.paper_vectors(data.docs) if semantic.available() else None
    corpus = build_corpus([Paper(i, t, a) for i, (t, a) in enumerate(data.docs)], vectors=vectors)
    first = corpus_relevance(corpus, topics)
    readers = simulated_readers(data, topics, first)
    rated = [(r.liked, r.disliked) for r in readers]
    results = []
    for name in methods:
        method = FEEDBACK_METHODS[name]
        score = first.copy()
        if method.semantic is not None:
            X = feedback.features(data.docs, corpus.unit, vectors if method.semantic else None)
            _, extra = feedback.apply(score, rated, X, {})
            score[(first <= 0) & ~extra] = -np.inf  # what the planner may not pick goes last
        per_topic = {r.topic: second_digest(r, score[i]) for i, r in enumerate(readers)}
        means = np.array(list(per_topic.values())).reshape(-1, 3).mean(axis=0) if per_topic else np.zeros(3)
        results.append(Result(name, *(round(float(x), 4) for x in means), topics=len(readers),
                              per_topic=per_topic))
    return results


def format_feedback_table(results: Sequence[Result], reference: bool = True) -> str:
    """Digest 2 per feedback method, then (on the set they were measured on) the protocol's published
    reference rows."""
    lines = [f"{'feedback':<58} {'nDCG@10':>8} {'P@10':>8} {'MAP@100':>8}"]
    for r in results:
        method = FEEDBACK_METHODS.get(r.ranker)
        label = f"{r.ranker}: {method.description}" if method else r.ranker
        lines.append(f"{label[:58]:<58} {r.ndcg10:>8.3f} {r.p10:>8.3f} {r.map100:>8.3f}")
    for name, (n, p, m) in FEEDBACK_REFERENCE.items() if reference else ():
        lines.append(f"{('reference: ' + name)[:58]:<58} {n:>8.3f} {p:>8.3f} {m:>8.3f}")
    return "\n".join(lines)



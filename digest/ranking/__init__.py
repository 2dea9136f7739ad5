"""Ranking: lexical index, topic scoring, trending blend, feedback, duplicates, explanations.

Public API: `rank(papers, profiles, ...)` for a batch of subscribers, `trending(papers, k)`; for a run
ranking many batches, `build_corpus(papers, now=, vectors=)` once, then `rank_with(corpus, profiles, ...)`
per batch and `trending_in(corpus, k)`.
"""

from digest.ranking.corpus import Corpus, Window, build_corpus, trend_scores, trending, trending_in
from digest.ranking.ranker import rank, rank_with

__all__ = ["Corpus", "Window", "build_corpus", "rank", "rank_with", "trend_scores", "trending", "trending_in"]

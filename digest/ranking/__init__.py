"""Ranking: lexical index, topic scoring, trending blend, feedback, duplicates, explanations.

Public API: `rank(papers, profiles, ...)` for a batch of subscribers, `trending(papers, k)`.
"""

from digest.ranking.ranker import rank, trend_scores, trending

__all__ = ["rank", "trend_scores", "trending"]

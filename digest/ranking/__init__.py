"""Ranking: lexical index, topic scoring, trending blend, feedback, duplicates, explanations.

Public API: `rank(papers, profiles, ...)` for a batch of subscribers, `trending(papers, k)`; for a run
ranking many batches, `build_corpus(papers, now=, vectors=)` once, then `rank_with(corpus, profiles, ...)`
per batch and `trending_in(corpus, k)` (or `hottest(corpus)`: all of them, made as read).
"""


from importlib import import_module

# name -> its module, imported on first use (PEP 562): importing a light module of the package
# (authors, text) does not load numpy and scipy with the ranker (issue 25: commands start fast)
_WHERE = {"Corpus": "corpus", "Window": "corpus", "build_corpus": "corpus", "trend_scores": "corpus",
          "trending": "corpus", "trending_in": "corpus",
          "hottest": "corpus", "Hottest": "corpus", "rank": "ranker", "rank_with": "ranker"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)

"""Trying topic phrases on a listings file (`digest rank`): read, rank, and the rows to print.

`tryout` ranks a listings file for one group of topics, or for each line of a queries file (each
line a subscriber of its own), and returns plain rows; `text_lines` and `json_lines` are the two
ways the command prints them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from digest.evaluation.listings import ListingsError, read_papers, read_text
from digest.ranking import semantic
from digest.ranking.ranker import rank
from digest.records import Profile

TITLE_WIDTH = 70  # longer titles are cut, with an ellipsis, in the text output


class TryoutError(ValueError):
    """Input that cannot be ranked; the message is one line for the user."""


@dataclass(frozen=True)
class Row:
    """One ranked paper: its display id (file column or arXiv id, else its row number)."""

    id: str
    title: str
    score: float
    why: str


@dataclass(frozen=True)
class QueryResult:
    """The ranking of one group of topics; `query` is the group joined with "; "."""

    query: str
    rows: list[Row]


@dataclass(frozen=True)
class Tryout:
    """Every group's ranking, in the order given, and how many papers were ranked."""

    papers: int
    results: list[QueryResult]
    ranker: str = "lexical"  # what ranked them (semantic.describe)


def read_queries(path: Path) -> list[list[str]]:
    """One single-topic group per line of a queries file; blank lines and # comments are skipped."""
    try:
        lines = [q.strip() for q in read_text(path).splitlines()]
    except ListingsError as err:
        raise TryoutError(str(err)) from err
    return [[q] for q in lines if q and not q.startswith("#")]


def tryout(
    listings: Path, *, topics: Sequence[str] = (), queries: Path | None = None, limit: int = 10,
    ranker: str = "auto",
) -> Tryout:
    """Rank the papers of `listings` for `topics` (one subscriber), or else for each line of `queries`.

    At most `limit` papers per group; `ranker` is "auto" | "lexical" | "hybrid" (semantic.wanted).
    Raises TryoutError for an unreadable or empty listings file, an unreadable queries file, or the
    hybrid ranker when its model cannot run."""
    try:
        papers, ids, rejected = read_papers(listings)
    except ListingsError as err:
        raise TryoutError(str(err)) from err
    groups = read_queries(queries) if queries is not None else [[t for t in topics if t.strip()]]
    if not papers:
        raise TryoutError(f"{listings}: no papers found ({rejected} entries rejected)")
    profiles = [Profile(subscriber_id=i, topics=g, max_items=limit) for i, g in enumerate(groups)]
    try:
        hybrid = semantic.wanted(ranker)
    except RuntimeError as err:
        raise TryoutError(str(err)) from err
    vectors = semantic.PaperVectors.of([(p.title, p.abstract) for p in papers]) if hybrid else None
    picks = rank(papers, profiles, vectors=vectors)
    return Tryout(
        papers=len(papers),
        ranker=semantic.describe(ranker),
        results=[
            QueryResult(
                "; ".join(group),
                [Row(ids[p.paper_id], papers[p.paper_id].title, p.score, p.why) for p in picks[i]],
            )
            for i, group in enumerate(groups)
        ],
    )


def json_lines(result: Tryout) -> list[str]:
    """One JSON object per group: {"query", "ranking": [{"id", "score" (4 places), "why"}]}."""
    return [
        json.dumps(
            {"query": q.query,
             "ranking": [{"id": r.id, "score": round(r.score, 4), "why": r.why} for r in q.rows]},
            ensure_ascii=False,
        )
        for q in result.results
    ]


def text_lines(result: Tryout) -> list[str]:
    """Per group a header, then per paper a numbered line (score, id, title) and its reason."""
    lines: list[str] = []
    for q in result.results:
        lines.append(f"== {q.query} ({len(q.rows)} of {result.papers} papers)")
        for n, r in enumerate(q.rows, 1):
            title = r.title if len(r.title) <= TITLE_WIDTH else r.title[: TITLE_WIDTH - 1] + "…"
            lines.append(f"{n:>3}. {r.score:.3f}  {r.id:<14} {title}")
            lines.append(f"     {r.why}")
    lines.append(f"(ranked by {result.ranker})")
    return lines

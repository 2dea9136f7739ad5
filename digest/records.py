"""Plain data handed between pipeline stages (no ORM objects cross a stage boundary)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Listing:
    """One paper as a source saw it. Only `title` is required; everything else is optional."""

    title: str
    abstract: str = ""
    source: str = ""
    arxiv_id: str | None = None  # canonical, without version ("2410.17243", "astro-ph/0601001")
    authors: list[str] = field(default_factory=list)
    published_at: datetime | None = None
    url: str | None = None
    pdf_url: str | None = None
    code_url: str | None = None
    project_url: str | None = None
    thumbnail_url: str | None = None
    upvotes: int | None = None
    num_comments: int | None = None
    github_stars: int | None = None
    ai_summary: str | None = None
    categories: list[str] = field(default_factory=list)
    doi: str | None = None
    comment: str | None = None
    version: int | None = None
    withdrawn: bool = False


@dataclass
class Paper:
    """A stored paper, as the ranker and renderer see it."""

    id: int
    title: str
    abstract: str
    arxiv_id: str | None = None
    authors: list[str] = field(default_factory=list)
    url: str | None = None
    pdf_url: str | None = None
    code_url: str | None = None
    project_url: str | None = None
    thumbnail_url: str | None = None
    upvotes: int = 0
    num_comments: int = 0
    github_stars: int | None = None
    ai_summary: str | None = None
    categories: list[str] = field(default_factory=list)
    published_at: datetime | None = None
    first_seen_at: datetime | None = None


@dataclass
class Profile:
    """What the ranker needs to know about one subscriber."""

    subscriber_id: int
    topics: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    max_items: int = 10
    liked: list[int] = field(default_factory=list)  # paper ids marked "more like this"
    disliked: list[int] = field(default_factory=list)  # paper ids marked "less like this"


@dataclass
class Pick:
    """One ranked paper for one subscriber, with the reason it was picked."""

    paper_id: int
    score: float
    topic: str | None = None  # the topic it matched best; None for a trending pick
    terms: list[str] = field(default_factory=list)  # matched terms or phrases
    why: str = ""  # one human sentence: "Matches “diffusion models”: diffusion, denoising"

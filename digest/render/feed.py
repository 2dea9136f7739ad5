"""A subscriber's private Atom feed (RFC 4287), generated with feedgen from the editions they were sent.

Pure: it takes the feed's content (`FeedContent`) and returns the document's bytes. The same content
always gives the same bytes (every date is given, none is "now"), so the document's hash is its ETag.
An entry's id is the paper's, not the edition's: a paper keeps its id however often the feed is
rebuilt and whichever edition carried it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from feedgen.feed import FeedGenerator

from digest.records import Paper, Pick
from digest.render.compose import authors_line, excerpt, paper_url
from digest.wording import one_line

ATOM_TYPE = "application/atom+xml"
MAX_AUTHORS = 20  # an entry names at most this many (a large collaboration lists hundreds)


@dataclass(frozen=True)
class FeedEntry:
    id: str  # stable: the paper's tag URI
    title: str
    url: str
    updated: datetime  # when the edition that carried it was sent
    why: str = ""
    summary: str = ""
    authors: tuple[str, ...] = ()
    published: datetime | None = None  # the paper's own date, when its source gave one
    kind: str = "pick"  # pick | trending


@dataclass(frozen=True)
class FeedContent:
    id: str
    title: str
    self_url: str
    site_url: str
    author: str  # the site's name: RFC 4287 4.1.1 wants a feed author unless every entry names one
    updated: datetime
    entries: list[FeedEntry] = field(default_factory=list)


def paper_tag(base_url: str, paper: Paper) -> str:
    """A tag URI (RFC 4151) naming the paper on this site: by arXiv id when it has one, else its row."""
    host = urlsplit(base_url).hostname or "localhost"
    name = f"arxiv:{paper.arxiv_id}" if paper.arxiv_id else f"paper:{paper.id}"
    return f"tag:{host},2024:{name}"


def feed_id(base_url: str, subscriber_id: int, secret: str) -> str:
    """The feed's own id: the same for every token of one subscriber, and naming no row number."""
    digest = hashlib.sha256(f"{secret}\0feed\0{subscriber_id}".encode()).hexdigest()
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{base_url}/feed/{digest}").urn


def entry_of(base_url: str, paper: Paper, pick: Pick, sent_at: datetime, kind: str,
             excerpt_chars: int = 320) -> FeedEntry:
    return FeedEntry(id=paper_tag(base_url, paper), title=one_line(paper.title) or "(untitled)",
                     url=paper_url(paper),
                     updated=sent_at, why=one_line(pick.why),
                     summary=excerpt(paper.ai_summary or paper.abstract,
                                                                             excerpt_chars),
                     authors=tuple(a for a in (one_line(x) for x in paper.authors[:MAX_AUTHORS]) if a),
                     published=paper.published_at, kind=kind)


def entries_of(editions: Sequence[tuple[datetime, Sequence[tuple[Paper, Pick, str]]]], base_url: str,
               excerpt_chars: int = 320) -> list[FeedEntry]:
    """The entries of sent editions: newest edition first, each in its own order (picks by rank, then
    trending); a paper once, where it came last."""
    seen: dict[str, FeedEntry] = {}
    for sent_at, items in sorted(editions, key=lambda e: e[0], reverse=True):
        for paper, pick, kind in items:
            entry = entry_of(base_url, paper, pick, sent_at, kind, excerpt_chars)
            seen.setdefault(entry.id, entry)
    return list(seen.values())


def render_atom(content: FeedContent) -> bytes:
    """The Atom document (UTF-8, with its XML declaration)."""
    fg = FeedGenerator()
    fg.id(content.id)
    fg.title(content.title)
    fg.updated(content.updated)
    fg.link(href=content.self_url, rel="self", type=ATOM_TYPE)
    fg.link(href=content.site_url, rel="alternate", type="text/html")
    fg.author(name=content.author)
    fg.generator("trending-digest")
    for e in reversed(content.entries):  # feedgen puts the last one added first
        fe = fg.add_entry()
        fe.id(e.id)
        fe.title(e.title)
        fe.link(href=e.url, rel="alternate")
        fe.updated(e.updated)
        if e.published is not None:
            fe.published(e.published)
        for name in e.authors:
            fe.author(name=name)
        fe.summary(e.why or authors_line(e.authors) or e.title)
        if e.summary:
            fe.content(e.summary, type="text")
        fe.category(term=e.kind)
    return fg.atom_str(pretty=True)


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'

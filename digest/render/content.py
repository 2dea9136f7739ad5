"""What the templates show: plain records the renderer fills (every string untrusted, escaped by Jinja)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Badge:
    """One artefact badge under a paper ("Code ★ 1.2k", "Project page", "Accepted at NeurIPS 2024"):
    never empty; `url`, when set, has passed `records.web_url`."""

    text: str
    url: str | None = None


@dataclass
class Entry:
    """One paper as the template shows it; every string is untrusted and escaped by Jinja."""

    rank: int
    title: str
    url: str
    authors: str = ""
    excerpt: str = ""
    why: str = ""
    meta: str = ""
    pdf_url: str | None = None
    code_url: str | None = None
    badges: tuple[Badge, ...] = ()
    more_url: str | None = None
    less_url: str | None = None


@dataclass
class DigestContent:
    subject: str
    preheader: str
    heading: str
    intro: str
    date_label: str
    site_name: str
    email: str
    frequency_label: str
    archive_url: str
    prefs_url: str
    unsubscribe_url: str
    feed_url: str = ""  # the subscriber's private Atom feed ("" in a preview of made-up topics)
    picks: list[Entry] = field(default_factory=list)
    trending: list[Entry] = field(default_factory=list)
    more_count: int = 0


@dataclass
class Rendered:
    subject: str
    html: str
    text: str
    shown: int  # picks shown; the rest are counted in the "more on the web" line
    # both bodies in whole lines, each part with whether many messages of a run share it ("".join = html)
    html_parts: tuple[tuple[str, bool], ...] = ()
    text_parts: tuple[tuple[str, bool], ...] = ()

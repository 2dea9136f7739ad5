"""Turn ranked picks into what the template shows: entries, subject, preheader, intro."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from digest.records import Edition, Paper, Pick, Subscriber, web_url
from digest.render import DigestContent, Entry
from digest.render.badges import badges
from digest.wording import frequency_label, heading_and_intro, one_line, subject_line


def excerpt(text: str, limit: int) -> str:
    """Cut at a sentence end if one is near, else at a word, within `limit` characters."""
    text = one_line(text)
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = cut.rfind(". ")
    if end >= limit * 0.6:
        return cut[: end + 1]
    return cut.rsplit(" ", 1)[0].rstrip(",;:") + "…"


def authors_line(authors: Sequence[str], limit: int = 5) -> str:
    names = [one_line(a) for a in authors if a and a.strip()]
    if len(names) > limit:
        return ", ".join(names[:limit]) + " et al."
    return ", ".join(names)


def paper_url(p: Paper) -> str:
    """The paper's page; a listing that came without any link gets a Hugging Face Papers search."""
    if p.url:
        return p.url
    if p.arxiv_id:
        return f"https://arxiv.org/abs/{p.arxiv_id}"
    return "https://huggingface.co/papers?" + urlencode({"q": one_line(p.title)})


def meta_line(p: Paper) -> str:
    bits = []
    if p.upvotes:
        bits.append(f"▲ {p.upvotes} upvote{'s' if p.upvotes != 1 else ''}")
    if p.num_comments:
        bits.append(f"{p.num_comments} comment{'s' if p.num_comments != 1 else ''}")
    if p.published_at:
        bits.append(p.published_at.strftime("%d %b %Y"))
    return " · ".join(bits)


class Entries:
    """Each paper's part of an entry (title, link, authors, excerpt, meta) is made once, however many
    editions show it; the rank, the reason and the feedback links are each subscriber's own.

    Wraps the papers by id; a sending run keeps one for the whole run and adds papers as it goes.
    """

    def __init__(self, papers: Mapping[int, Paper] | None = None, excerpt_chars: int = 320):
        self.papers: dict[int, Paper] = dict(papers or {})
        self.excerpt_chars = excerpt_chars
        self._made: dict[int, Entry] = {}

    def __contains__(self, paper_id: object) -> bool:
        return paper_id in self.papers

    def add(self, papers: Mapping[int, Paper]) -> None:
        self.papers.update(papers)

    def entry(self, rank: int, pick: Pick, feedback: Callable[[int, int], str] | None = None) -> Entry:
        base = self._made.get(pick.paper_id)
        if base is None:
            base = self._made[pick.paper_id] = paper_entry(self.papers[pick.paper_id], self.excerpt_chars)
        return Entry(**{**vars(base), "rank": rank, "why": one_line(pick.why),  # twice as fast as replace()
                        "more_url": feedback(pick.paper_id, 1) if feedback else None,
                        "less_url": feedback(pick.paper_id, -1) if feedback else None})


def paper_entry(p: Paper, excerpt_chars: int) -> Entry:
    """What an entry shows of the paper itself (no rank, reason or links yet)."""
    return Entry(rank=0, title=one_line(p.title), url=paper_url(p), authors=authors_line(p.authors),
                 excerpt=excerpt(p.ai_summary or p.abstract, excerpt_chars), meta=meta_line(p),
                 pdf_url=web_url(p.pdf_url), code_url=web_url(p.code_url), badges=badges(p))


def compose(
    *,
    site_name: str,
    email: str,
    frequency: str,
    topics: Sequence[str],
    picks: Sequence[Pick],
    trending: Sequence[Pick],
    papers: Mapping[int, Paper] | Entries,
    when: datetime,
    archive_url: str,
    prefs_url: str,
    unsubscribe_url: str,
    feed_url: str = "",
    excerpt_chars: int = 320,
    feedback: Callable[[int, int], str] | None = None,
    likes: bool = False,
    authors: Sequence[str] = (),
    best_of_week: bool = False,
) -> DigestContent:
    """`likes`: the subscriber liked papers (clicks or seeds), which rank their digest when they have
    no topics; `authors`: the authors they follow (named in the intro)."""
    made = papers if isinstance(papers, Entries) else Entries(papers, excerpt_chars)
    entries = [made.entry(i, pk, feedback) for i, pk in enumerate(picks, 1)]
    hot = [made.entry(i, pk) for i, pk in enumerate(trending, 1)]
    heading, intro = heading_and_intro(len(entries), topics, authors, likes, best_of_week)
    lead = "; ".join(e.title for e in entries[:2])
    return DigestContent(
        subject=subject_line(len(entries), entries[0].title if entries else "", bool(topics) or likes),
        preheader=excerpt(f"{lead}. Also: {len(hot)} trending papers." if hot else lead, 140),
        heading=heading,
        intro=intro,
        date_label=when.strftime("%A %d %B %Y"),
        site_name=site_name,
        email=email,
        frequency_label=frequency_label(frequency, best_of_week),
        archive_url=archive_url,
        prefs_url=prefs_url,
        unsubscribe_url=unsubscribe_url,
        feed_url=feed_url,
        picks=entries,
        trending=hot,
    )


class EditionLinks(Protocol):
    """The signed URLs a digest carries (`digest.subscriptions.links.Links` is one)."""

    def archive(self, subscriber_id: int, delivery_id: int) -> str: ...
    def preferences(self, subscriber_id: int) -> str: ...
    def unsubscribe(self, subscriber_id: int) -> str: ...
    def feed(self, subscriber_id: int) -> str: ...
    def feedback_links(self, subscriber_id: int) -> Callable[[int, int], str]: ...


def edition_content(sub: Subscriber, edition: Edition, papers: Mapping[int, Paper] | Entries,
                    links: EditionLinks, *,
                    site_name: str, excerpt_chars: int = 320) -> DigestContent:
    """What one subscriber's edition shows: their picks and trending papers that are still in
    `papers`, dated in their own time zone, with their signed links."""
    return compose(
        site_name=site_name, email=sub.email, frequency=sub.frequency, topics=sub.topics,
        picks=[p for p in edition.picks if p.paper_id in papers],
        trending=[p for p in edition.trending if p.paper_id in papers],
        papers=papers, when=edition.planned_at.astimezone(ZoneInfo(sub.timezone)),
        archive_url=links.archive(sub.id, edition.id or 0), prefs_url=links.preferences(sub.id),
        unsubscribe_url=links.unsubscribe(sub.id), feed_url=links.feed(sub.id), excerpt_chars=excerpt_chars,
        feedback=links.feedback_links(sub.id), likes=bool(sub.liked), authors=sub.authors,
        best_of_week=sub.best_of_week,
    )

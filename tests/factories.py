"""World builders for the tests: papers, subscribers and planned editions, made through the same
code the product uses (the store's upsert, the ledger), fast enough for hundreds of rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from digest.delivery import ledger
from digest.mail.message import sender_domain
from digest.records import Edition, Listing, Pick
from digest.store.db import Database
from digest.store.models import Paper, Subscriber, Topic
from digest.store.papers import upsert

TOPICS = ["large language models", "diffusion models", "graph neural networks", "reinforcement learning",
          "video generation"]
BASE = "https://digest.example.org"
FROM = "Trending Papers <digest@example.org>"


def addr(i: int) -> str:
    return f"user{i:03d}@example.org"


def add_papers(db: Database, n: int, *, when: datetime | None = None,
               title: str = "{Topic} at scale, part {i}",
               abstract: str = "We study this question at length. " * 12, arxiv: bool = True,
               topic: str | None = None, upvoted: bool = True) -> list[int]:
    """n papers, first seen at `when` (now), through the store's upsert; returns their ids in order.
    Paper i has i upvotes (none if not `upvoted`).
    `title` and `abstract` are formatted with {i}, {topic} and {Topic} (TOPICS round-robin, or `topic`)."""
    when = when or datetime.now(UTC)
    listings = []
    for i in range(n):
        t = topic or TOPICS[i % len(TOPICS)]
        names = {"i": i, "topic": t, "Topic": t.capitalize()}
        listings.append(Listing(title=title.format(**names), abstract=abstract.format(**names),
                                authors=["A. Author", "B. Author"],
                                arxiv_id=f"2611.{i:05d}" if arxiv else None, upvotes=i if upvoted else None,
                                source="test"))
    with db.session() as s:
        upsert(s, listings, when)
        keys = [x.arxiv_id for x in listings] if arxiv else None
        rows = s.execute(select(Paper.id, Paper.arxiv_id, Paper.title)).all()
    if keys is not None:
        by = {a: i for i, a, _ in rows}
        return [by[k] for k in keys]
    by_title = {t: i for i, _, t in rows}
    return [by_title[x.title] for x in listings]


def add_tagged(db: Database, n: int, when: datetime, tag: str, *, matching: bool = True) -> list[int]:
    """n papers first seen at `when`, tagged `tag` in their titles: about graph neural networks when
    `matching` (the scheduling tests' subscribers' topic), else about soil chemistry; no upvotes."""
    title = (f"Graph neural networks for {tag} problem {{i}}" if matching
             else f"Soil chemistry of {tag} field {{i}}")
    abstract = (f"We study graph neural networks on {tag} benchmarks, part {{i}}." if matching
                else f"We sample {tag} soils for nitrogen, site {{i}}.")
    return add_papers(db, n, when=when, arxiv=False, upvoted=False, title=title, abstract=abstract)


def add_titled(db: Database, titles: Sequence[str], *, first_seen: Callable[[int], datetime] | None = None,
               upvotes: Callable[[int], int] = lambda i: 5, published_at: datetime | None = None,
               authors: Sequence[str] = (), first_id: int = 0, prefix: str = "2611") -> list[int]:
    """A paper for each title ("<title>. We study this at length."), arXiv ids prefix.first_id on;
    paper i first seen at `first_seen(i)` (default: i + 1 hours ago) with `upvotes(i)` upvotes."""
    now = datetime.now(UTC)
    seen = first_seen or (lambda i: now - timedelta(hours=i + 1))
    ids = []
    for i, t in enumerate(titles):
        listing = Listing(title=t, abstract=f"{t}. We study this at length.", authors=list(authors),
                          arxiv_id=f"{prefix}.{first_id + i:05d}", upvotes=upvotes(i),
                          published_at=published_at,
                          source="test")
        with db.session() as s:
            upsert(s, [listing], seen(i))
            ids.append(s.execute(select(Paper.id).where(Paper.arxiv_id == listing.arxiv_id)).scalar_one())
    return ids


def add_recent(db: Database, titles: Sequence[str], hours_ago: float, prefix: str = "2611") -> list[int]:
    """Papers by Ada Lovelace and Alan Turing published a day ago, the first first seen `hours_ago`
    hours ago and each next one an hour before; arXiv ids after those already stored."""
    now = datetime.now(UTC)
    with db.session() as s:
        n = s.query(Paper).count()
    return add_titled(db, titles, first_seen=lambda i: now - timedelta(hours=hours_ago + i),
                      upvotes=lambda i: 10 - i,
                      published_at=now - timedelta(days=1), authors=["Ada Lovelace", "Alan Turing"],
                      first_id=n,
                      prefix=prefix)


def add_subscribers(db: Database, n: int, start: int = 0) -> None:
    """n active subscribers user{start..}@example.org, one topic each (the CLI's validation is tested
    elsewhere; this is a bulk insert)."""
    with db.session() as s:
        s.add_all(Subscriber(email=addr(i), name=f"User {i}", status="active",
                             topics=[Topic(phrase=TOPICS[i % 5])])
                  for i in range(start, start + n))


def plan_editions(db: Database, settings, picks: list[int], period: str = "2026-11-22",
                  topic: str = TOPICS[0]) -> dict[str, str]:
    """This period's edition for every subscriber, holding `picks`, written through the ledger as the
    planner writes them (the planner has its own tests); returns email -> Message-ID."""
    now = datetime.now(UTC)
    with db.session() as s:
        subs = s.execute(select(Subscriber.id, Subscriber.email).order_by(Subscriber.id)).all()
    editions = [Edition(subscriber_id=sid, email=email, period=period, window_start=None, window_end=now,
                        planned_at=now, picks=tuple(Pick(p, 1 / i, topic=topic, why=f"Matches “{topic}”")
                                                    for i, p in enumerate(picks, 1)))
                for sid, email in subs]
    written, _ = ledger.write(db, editions, sender_domain(settings.mail.from_address))
    return {e.email: e.message_id for e in written}


def planned_world(db: Database, settings, n: int, papers: int = 3) -> dict[str, str]:
    """n subscribers with this period's delivery planned; returns email -> Message-ID."""
    pids = add_papers(db, papers)
    add_subscribers(db, n)
    return plan_editions(db, settings, pids)


def mail_settings(settings_for, db: Database, sink, **mail):
    """Settings that send over SMTP to `sink` (a digest.mail.sink.SmtpSink), links under BASE."""
    smtp = {"host": sink.host, "port": sink.port, **mail.pop("smtp", {})}
    return settings_for(db.url, web={"base_url": BASE},
                        mail={"transport": "smtp", "from_address": FROM,
                              "list_id": "Trending papers <digest.example.org>",
                              "unsubscribe_mailto": "unsubscribe@example.org", "smtp": smtp, **mail})


def all_rows(db: Database, model, *where) -> list:
    """Every row of a table (matching `where`), detached with its columns loaded, for assertions."""
    with db.session() as s:
        found = list(s.scalars(select(model).where(*where).order_by(*model.__table__.primary_key.columns)))
        s.expunge_all()  # before the commit expires them: they keep what was read
    return found

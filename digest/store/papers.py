"""Papers in the store: the upsert that ingest uses (one row per paper, deduplicated by arXiv id,
else by normalised title) and reading them back as `records.Paper`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import func, insert, or_, select, type_coerce, update
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from digest.records import Listing, Paper, as_utc, key_of, title_key
from digest.store.db import among
from digest.store.models import Feedback
from digest.store.models import Paper as PaperRow

CHUNK = 500  # rows per lookup / executemany


def to_paper(row: PaperRow) -> Paper:
    return Paper(
        id=row.id, title=row.title, abstract=row.abstract or "", arxiv_id=row.arxiv_id,
        authors=list(row.authors or []), url=row.url, pdf_url=row.pdf_url, code_url=row.code_url,
        project_url=row.project_url, thumbnail_url=row.thumbnail_url, upvotes=row.upvotes or 0,
        num_comments=row.num_comments or 0, github_stars=row.github_stars, ai_summary=row.ai_summary,
        categories=list(row.categories or []), published_at=row.published_at, first_seen_at=row.first_seen_at,
        comment=row.comment,
    )


def load(session: Session, *, seen_after: datetime | None = None,
         ids: Sequence[int] | None = None, newest: int | None = None) -> list[Paper]:
    """Papers by id when `ids` is given (withdrawn ones included: they were sent once; none for an
    empty list), else every listed paper first seen after `seen_after` (all without it), in id order;
    with `newest`, only that many of them, the last first seen (the pages' bounded previews).
    A paper only a subscriber's seed brought in (`listed` false) is never in the second kind."""
    if ids is not None:
        wanted = sorted(set(ids))
        rows = [r for start in range(0, len(wanted), 5000)
                for r in session.scalars(select(PaperRow).where(among(PaperRow.id,
                                                                      wanted[start : start + 5000])))]
        return [to_paper(r) for r in sorted(rows, key=lambda r: r.id)]
    q = select(PaperRow).where(PaperRow.withdrawn_at.is_(None), PaperRow.listed.is_(True))
    if seen_after is not None:
        q = q.where(PaperRow.first_seen_at > seen_after)
    if newest is not None:
        rows = session.scalars(q.order_by(PaperRow.first_seen_at.desc(), PaperRow.id.desc()).limit(newest))
        return [to_paper(r) for r in sorted(rows, key=lambda r: r.id)]
    return [to_paper(r) for r in session.scalars(q.order_by(PaperRow.id))]


# what ranking and subjects need of a paper: everything but its long texts (abstract, AI summary, comment)
_LIGHT = [PaperRow.__table__.c[k] for k in (
    "id", "title", "arxiv_id", "authors", "url", "pdf_url", "code_url", "project_url", "thumbnail_url",
    "upvotes", "num_comments", "github_stars", "categories", "published_at", "first_seen_at")]


def load_light(session: Session, *, seen_after: datetime | None = None, newest: int | None = None,
               ) -> list[Paper]:
    """`load(session, seen_after=..., newest=...)` without the papers' long texts: each record's
    abstract is "" and its AI summary and comment None (a run's candidate window at 200,000 papers
    holds no abstract; `texts` reads them by id where needed). Read as plain rows, no ORM objects."""
    t = PaperRow.__table__
    # the JSON and datetime columns come as the driver gives them, converted here as their column types
    # would (SQLAlchemy's processors were a fifth of a 200,000-paper read)
    q = select(*[type_coerce(c, _RAW).label(c.key) if c.key in _CONVERTED else c for c in _LIGHT]) \
        .where(t.c.withdrawn_at.is_(None), t.c.listed.is_(True))
    if seen_after is not None:
        q = q.where(t.c.first_seen_at > seen_after)
    if newest is not None:
        q = select(q.order_by(t.c.first_seen_at.desc(), t.c.id.desc()).limit(newest).subquery())
    rows = session.execute(q.order_by("id"))
    return [Paper(
        id=r.id, title=r.title, abstract="", arxiv_id=r.arxiv_id, authors=list(_json(r.authors) or []),
        url=r.url, pdf_url=r.pdf_url, code_url=r.code_url, project_url=r.project_url,
        thumbnail_url=r.thumbnail_url, upvotes=r.upvotes or 0, num_comments=r.num_comments or 0,
        github_stars=r.github_stars, categories=list(_json(r.categories) or []),
        published_at=_time(r.published_at), first_seen_at=_time(r.first_seen_at))
        for r in rows]


_CONVERTED = {"authors", "categories", "published_at", "first_seen_at"}
_RAW = NullType()


def _json(value):
    """A JSON column's value as SQLAlchemy's JSON type reads it (text on SQLite, decoded on PostgreSQL)."""
    return json.loads(value) if isinstance(value, str) else value


def _time(value):
    """A datetime column's value as models.UTCDateTime reads it: aware, UTC where the backend forgets."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def texts(session: Session, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """(title, abstract) of each paper id (withdrawn ones included)."""
    t = PaperRow.__table__
    out: dict[int, tuple[str, str]] = {}
    wanted = sorted(set(ids))
    for start in range(0, len(wanted), 5000):
        for i, title, abstract in session.execute(select(t.c.id, t.c.title, t.c.abstract).where(
                among(t.c.id, wanted[start : start + 5000]))):
            out[i] = (title, abstract or "")
    return out


def newest_id(session: Session) -> int:
    """The highest paper id (0 for none): whether papers came in since a moment."""
    return session.scalar(select(func.max(PaperRow.id))) or 0


def with_feedback(session: Session) -> set[int]:
    """Every paper some subscriber marked "more" or "less like this"."""
    return set(session.scalars(select(Feedback.paper_id).distinct()))


def by_ids(session: Session, ids: Sequence[int]) -> dict[int, Paper]:
    return {p.id: p for p in load(session, ids=ids)} if ids else {}



_COLUMNS = [c.key for c in PaperRow.__table__.columns]


def upsert(s: Session, listings: list[Listing], now: datetime) -> tuple[int, int]:
    """Insert or merge clean listings (their `source` set) into `papers`. Returns (new, updated).

    Batched: existing rows are read with a few IN queries, new rows go in with one Core executemany
    (no ORM objects), changed rows are written back with one bulk UPDATE by primary key."""
    now = as_utc(now)
    created: list[dict] = []
    keys = [key_of(x) for x in listings]
    rows = _preload(s, listings, keys)
    by_id: dict[str, dict] = {r["arxiv_id"]: r for r in rows if r["arxiv_id"]}
    by_key: dict[str, list[dict]] = {}
    for r in rows:
        by_key.setdefault(r["title_key"], []).append(r)
    originals = {r["id"]: dict(r) for r in rows}
    for listing, key in zip(listings, keys, strict=True):
        row = by_id.get(listing.arxiv_id) if listing.arxiv_id else None
        if row is None:
            row = next((r for r in by_key.get(key, []) if not listing.arxiv_id or not r["arxiv_id"]), None)
        if row is None:
            row = _new_row(listing, key, now)
            created.append(row)
        else:
            _merge(row, listing, now)
        if row["arxiv_id"]:
            by_id[row["arxiv_id"]] = row
        if row not in by_key.setdefault(row["title_key"], []):
            by_key[row["title_key"]].append(row)
    changed = [r for r in rows if _differs(r, originals[r["id"]])]
    for r in changed:
        r["updated_at"] = now
    for start in range(0, len(created), CHUNK):
        s.execute(insert(PaperRow.__table__), created[start : start + CHUNK])
    for start in range(0, len(changed), CHUNK):
        s.execute(update(PaperRow), changed[start : start + CHUNK])
    return len(created), len(changed)


def _preload(s: Session, listings: list[Listing], keys: list[str]) -> list[dict]:
    """The stored rows sharing an arXiv id or a title key (`keys`, one a listing) with `listings`."""
    ids = sorted({x.arxiv_id for x in listings if x.arxiv_id})
    keys = sorted(set(keys))
    table = PaperRow.__table__
    found: dict[int, dict] = {}
    for start in range(0, max(len(ids), len(keys)), CHUNK):
        chunk_ids, chunk_keys = ids[start : start + CHUNK], keys[start : start + CHUNK]
        cond = or_(among(table.c.arxiv_id, chunk_ids), among(table.c.title_key, chunk_keys))
        for row in s.execute(select(table).where(cond)).mappings():
            found[row["id"]] = dict(row)
    return [found[i] for i in sorted(found)]


def _new_row(x: Listing, key: str, now: datetime) -> dict:
    return {
        "arxiv_id": x.arxiv_id,
        "title_key": key,
        "title": x.title,
        "abstract": x.abstract,
        "authors": list(x.authors),
        "url": x.url,
        "pdf_url": x.pdf_url,
        "code_url": x.code_url,
        "project_url": x.project_url,
        "thumbnail_url": x.thumbnail_url,
        "upvotes": x.upvotes or 0,
        "num_comments": x.num_comments or 0,
        "github_stars": x.github_stars,
        "ai_summary": x.ai_summary,
        "categories": list(x.categories),
        "doi": x.doi,
        "comment": x.comment,
        "version": x.version,
        "sources": [x.source] if x.source else [],
        "published_at": x.published_at,
        "first_seen_at": now,
        "updated_at": now,
        "withdrawn_at": now if x.withdrawn else None,
        "listed": True,
    }


def _merge(row: dict, x: Listing, now: datetime) -> None:
    """Fold one listing into a stored row (in place).

    Descriptive fields (title, abstract, authors, categories, PDF link) follow the newest arXiv version:
    a listing replaces them unless the row holds a later version than the listing. Counters follow
    the latest fetch. Links and extras are filled, never blanked. Dates keep the earliest."""
    newer = row["version"] is None or (x.version is not None and x.version >= row["version"])
    for col in ("title", "abstract", "authors", "categories", "pdf_url"):
        value = getattr(x, col)
        if value and (newer or not row[col]):
            row[col] = list(value) if isinstance(value, list) else value
    row["title_key"] = title_key(row["title"])
    if x.version is not None and (row["version"] is None or x.version > row["version"]):
        row["version"] = x.version
    if x.arxiv_id and not row["arxiv_id"]:
        row["arxiv_id"] = x.arxiv_id
    if not row["url"]:
        row["url"] = x.url
    for col in ("code_url", "project_url", "thumbnail_url", "ai_summary", "github_stars"):
        if getattr(x, col) is not None:
            row[col] = getattr(x, col)
    for col in ("doi", "comment"):
        if getattr(x, col) is not None and (newer or row[col] is None):
            row[col] = getattr(x, col)
    if x.upvotes is not None:
        row["upvotes"] = x.upvotes
    if x.num_comments is not None:
        row["num_comments"] = x.num_comments
    if x.published_at and (row["published_at"] is None or x.published_at < as_utc(row["published_at"])):
        row["published_at"] = x.published_at
    if not row["listed"]:  # a seeded paper a source lists now: a candidate from today on
        row["listed"], row["first_seen_at"] = True, now
    if row["first_seen_at"] is None or now < as_utc(row["first_seen_at"]):
        row["first_seen_at"] = now
    if x.source and x.source not in (row["sources"] or []):
        row["sources"] = [*(row["sources"] or []), x.source]
    if x.withdrawn and row["withdrawn_at"] is None:
        row["withdrawn_at"] = now


def _differs(row: dict, before: dict) -> bool:
    return any(row[c] != before[c] for c in _COLUMNS if c != "updated_at")



def seed(s: Session, listings: Sequence[Listing], now: datetime) -> list[int]:
    """The ids of the papers a subscriber's seed names, in order: a stored paper (same arXiv id, else
    same normalised title) as it is, a new one stored unlisted (never a candidate; `_merge` lists it
    when a source brings it). Duplicates within `listings` give one id."""
    now = as_utc(now)
    rows = _preload(s, list(listings), [key_of(x) for x in listings])
    by_id = {r["arxiv_id"]: r["id"] for r in rows if r["arxiv_id"]}
    by_key: dict[str, list[tuple[int, str | None]]] = {}
    for r in rows:
        by_key.setdefault(r["title_key"], []).append((r["id"], r["arxiv_id"]))
    out: list[int] = []
    for x in listings:
        key = key_of(x)
        pid = by_id.get(x.arxiv_id) if x.arxiv_id else None
        if pid is None:  # the same title, unless both carry different arXiv ids (as `upsert` matches)
            pid = next((i for i, a in by_key.get(key, []) if not x.arxiv_id or not a), None)
        if pid is None:
            fresh = {**_new_row(x, key, now), "listed": False, "sources": []}
            pid = s.execute(insert(PaperRow).values(**fresh).returning(PaperRow.id)).scalar_one()
            by_key.setdefault(key, []).append((pid, x.arxiv_id))
            if x.arxiv_id:
                by_id[x.arxiv_id] = pid
        if pid not in out:
            out.append(pid)
    return out


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(PaperRow)) or 0

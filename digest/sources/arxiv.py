"""`arxiv` source: the arXiv API, `GET {base_url}/api/query`, parsed with feedparser.

Asks for the configured categories (`cat:cs.LG OR cat:cs.CL`, or a raw `query`) newest first
(`sortBy=submittedDate`), pages with `start` / `max_results`, waits `delay` seconds between calls
(arXiv asks for 3), and stops at a short page, at `max_results`, or at the first entry older than
where it stopped last time (the watermark, less `overlap_days` for late announcements).

Each page is stored as it arrives, but the watermark only moves once the walk is complete: the walk
goes newest to oldest, so a run cut short must start again from the top next time.
"""

from __future__ import annotations

import calendar
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

import feedparser

from digest.config import ArxivSource
from digest.records import Listing
from digest.sources import Batch, Cursor, SourceError
from digest.sources.clean import clean_listing, clean_text, parse_arxiv_id, parse_datetime
from digest.sources.http import HttpClient

log = logging.getLogger(__name__)

_BENIGN = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)
_WITHDRAWN = re.compile(r"\b(has been|is|was) withdrawn\b|\bwithdrawn by the authors?\b", re.IGNORECASE)


@dataclass
class FeedPage:
    listings: list[Listing] = field(default_factory=list)
    rejected: int = 0
    total: int | None = None  # opensearch:totalResults

    @property
    def count(self) -> int:
        return len(self.listings) + self.rejected


def fetch(config: ArxivSource, cursor: Cursor, client: HttpClient) -> Iterator[Batch]:
    query = config.query or " OR ".join(f"cat:{c}" for c in config.categories)
    if cursor.since is not None:
        cutoff = datetime.combine(cursor.since, time(), tzinfo=UTC)
    elif cursor.watermark and (mark := parse_datetime(cursor.watermark)):
        cutoff = mark - timedelta(days=config.overlap_days)
    else:
        cutoff = cursor.now - timedelta(days=config.backfill_days)
    url = config.base_url.rstrip("/") + "/api/query"
    newest: datetime | None = None
    start = 0
    complete = False  # reached the cutoff or the end of the results, not just max_results
    while start < config.max_results:
        if start and config.delay:
            client.sleep(config.delay)
        size = min(config.page_size, config.max_results - start)
        params = {
            "search_query": query,
            "sortBy": "submittedDate",
            "sortOrder": "descending",
            "start": start,
            "max_results": size,
        }
        resp = client.get(url, params, accept="application/atom+xml")
        try:
            page = parse_feed(resp.content, resp.status)
        except ValueError as err:
            raise SourceError(f"start={start}: {err}") from None
        fresh = [x for x in page.listings if x.published_at is None or x.published_at >= cutoff]
        for x in fresh:
            if x.published_at and (newest is None or x.published_at > newest):
                newest = x.published_at
        log.debug("arxiv start=%d: %d entries, %d in window", start, page.count, len(fresh))
        yield Batch(listings=fresh, rejected=page.rejected, note=f"start={start}")
        start += page.count
        reached_end = page.count < size or (page.total is not None and start >= page.total)
        if reached_end or len(fresh) < len(page.listings):
            complete = True
            break
    # the whole window is stored: only now may the watermark move
    if not complete:
        log.warning(
            "arxiv: stopped at max_results=%d before reaching %s; older entries of the window were not "
            "fetched (raise max_results)", config.max_results, f"{cutoff:%Y-%m-%d %H:%M}",
        )
    yield Batch(watermark=newest.isoformat() if newest else None, note="done")


def parse_feed(content: bytes, status: int = 200) -> FeedPage:
    """Listings in one arXiv API response. Raises ValueError when the response as a whole is unusable:
    not an Atom feed (an HTML error page, truncated XML), or arXiv's error feed (HTTP 400)."""
    parsed = feedparser.parse(content)  # bytes: feedparser never goes to the network for bytes
    errors = [e for e in parsed.entries if "/api/errors" in str(e.get("id", ""))]
    if errors:
        detail = clean_text(errors[0].get("summary") or errors[0].get("title"), 200)
        raise ValueError(f"arXiv API error (HTTP {status}): {detail}")
    if status != 200:
        raise ValueError(f"HTTP {status}")
    if not str(parsed.get("version", "")).startswith("atom"):
        raise ValueError("not an Atom feed"
                         + (" (got an HTML page)" if b"<html" in content[:2000].lower() else ""))
    bozo = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if bozo is not None and not isinstance(bozo, _BENIGN):  # malformed or cut mid-document
        raise ValueError(f"invalid XML ({str(bozo)[:100]})")
    page = FeedPage(total=_int(parsed.feed.get("opensearch_totalresults")))
    for entry in parsed.entries:
        listing = listing_from_entry(entry)
        if listing is None:
            page.rejected += 1
        else:
            page.listings.append(listing)
    return page


def listing_from_entry(entry: dict) -> Listing | None:
    parsed = parse_arxiv_id(str(entry.get("id", "")))
    if parsed is None:
        return None
    arxiv_id, version = parsed
    categories = [t.get("term") for t in entry.get("tags", []) if isinstance(t, dict)]
    primary = entry.get("arxiv_primary_category")
    if isinstance(primary, dict) and primary.get("term") in categories:
        categories.remove(primary["term"])
        categories.insert(0, primary["term"])
    pdf = next(
        (ln.get("href") for ln in entry.get("links", []) if ln.get("title") == "pdf" or ln.get("type")
         == "application/pdf"),
        None,
    )
    comment = entry.get("arxiv_comment")
    return clean_listing(
        Listing(
            title=entry.get("title"),  # type: ignore[arg-type]  # checked by clean_listing
            abstract=entry.get("summary") or "",
            arxiv_id=arxiv_id,
            version=version,
            authors=[a.get("name") for a in entry.get("authors", []) if isinstance(a, dict)],
            published_at=_when(entry, "published"),
            url=f"https://arxiv.org/abs/{arxiv_id}",
            pdf_url=pdf or f"https://arxiv.org/pdf/{arxiv_id}" + (f"v{version}" if version else ""),
            categories=categories,
            doi=entry.get("arxiv_doi"),
            comment=comment,
            withdrawn=bool(isinstance(comment, str) and _WITHDRAWN.search(comment)),
        )
    )


def _when(entry: dict, key: str) -> datetime | None:
    st = entry.get(f"{key}_parsed")
    if st:
        try:
            return datetime.fromtimestamp(calendar.timegm(st), UTC)
        except (OverflowError, ValueError, OSError):
            return None
    return parse_datetime(entry.get(key))


def _int(value: object) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


ID_BATCH = 100  # ids per `id_list` call


def fetch_ids(base_url: str, ids: list[str], client: HttpClient, delay: float = 3.0,
              progress: Callable[[int], None] | None = None) -> tuple[list[Listing], list[str]]:
    """The papers of the given arXiv ids (`GET {base_url}/api/query?id_list=...`, up to ID_BATCH a
    call, `delay` seconds between calls), and the ids as given that arXiv did not return. An id with
    a version asks for that version; the answer is matched back by canonical id. Raises SourceError
    when arXiv cannot be asked or answers with an error. `progress(n)` after each call: n ids asked."""
    url = base_url.rstrip("/") + "/api/query"
    found: dict[str, Listing] = {}
    for start in range(0, len(ids), ID_BATCH):
        if start and delay:
            client.sleep(delay)
        chunk = ids[start : start + ID_BATCH]
        asked = [_id_param(i) for i in chunk]
        resp = client.get(url, {"id_list": ",".join(asked), "start": 0, "max_results": len(chunk)},
                          accept="application/atom+xml")
        try:
            page = parse_feed(resp.content, resp.status)
        except ValueError as err:
            raise SourceError(str(err)) from None
        found.update((x.arxiv_id, x) for x in page.listings if x.arxiv_id)
        if progress:
            progress(len(chunk))
    out: list[Listing] = []
    missing: list[str] = []
    for given in ids:
        parsed = parse_arxiv_id(given)
        listing = found.get(parsed[0]) if parsed else None
        if listing is None:
            missing.append(given)
        elif listing not in out:
            out.append(listing)
    return out, missing


def _id_param(given: str) -> str:
    """The id as arXiv's id_list takes it: canonical, with the version when one was given."""
    parsed = parse_arxiv_id(given)
    if parsed is None:
        raise ValueError(f"not an arXiv id: {given!r}")
    ident, version = parsed
    return f"{ident}v{version}" if version else ident

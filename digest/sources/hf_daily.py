"""`hf_daily` source: Hugging Face Daily Papers, `GET {base_url}/api/daily_papers?date=YYYY-MM-DD`.

Walks one day at a time from the watermark (the last day stored) to today, paging with `p` and
`limit` until a short page. Each run re-fetches the watermark day and the `refresh_days` before it,
so upvotes and comments stay fresh; those re-fetches are conditional (ETag / Last-Modified), so an
unchanged day costs a 304. One batch per day: the watermark moves only once that day is stored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, date, timedelta
from urllib.parse import urlencode

from digest.config import HfDailySource
from digest.records import Listing
from digest.sources import MAX_DAYS_BACK, Batch, Cursor, SourceError, bound_since, collect
from digest.sources.clean import clean_listing, parse_arxiv_id
from digest.sources.http import HttpClient

log = logging.getLogger(__name__)

MAX_PAGES = 100  # per day; a server that never sends a short page cannot keep us walking
THUMBNAIL = "https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/{}.png"


def fetch(config: HfDailySource, cursor: Cursor, client: HttpClient) -> Iterator[Batch]:
    today = cursor.now.astimezone(UTC).date()
    notice = None
    if cursor.since is not None:  # asked for explicitly: bounded like a watermark, and said so
        start, notice = bound_since(cursor.since, today)
    elif cursor.watermark:
        try:
            start = date.fromisoformat(cursor.watermark) - timedelta(days=config.refresh_days)
        except ValueError:
            start = today - timedelta(days=config.backfill_days)
        start = max(start, today - timedelta(days=MAX_DAYS_BACK))  # after a long outage, a year at most
    else:
        start = today - timedelta(days=config.backfill_days)
    url = config.base_url.rstrip("/") + "/api/daily_papers"
    day = start
    while day <= today:
        batch = _fetch_day(config, cursor, client, url, day)
        batch.notice, notice = notice, None
        yield batch
        day += timedelta(days=1)


def _fetch_day(config: HfDailySource, cursor: Cursor, client: HttpClient, url: str, day: date) -> Batch:
    batch = Batch(watermark=day.isoformat(), note=day.isoformat())
    for page in range(MAX_PAGES):
        params: dict[str, str | int] = {"date": day.isoformat(), "p": page, "limit": config.page_size}
        if config.sort:
            params["sort"] = config.sort
        key = f"{url}?{urlencode(params)}"
        cached = cursor.http_cache.get(key) or {}
        resp = client.get(url, params, validators=cached, accept="application/json")
        if resp.not_modified:
            count = int(cached.get("count", 0))
        elif resp.status == 200:
            try:
                listings, rejected = parse_payload(resp.content)
            except ValueError as err:
                raise SourceError(f"{day} page {page}: {err}") from None
            batch.listings += listings
            batch.rejected += rejected
            count = len(listings) + rejected
        else:
            raise SourceError(f"{day} page {page}: HTTP {resp.status} from {resp.url}")
        if resp.validators:
            batch.http_cache[key] = {**resp.validators, "count": count}
        log.debug("hf_daily %s p%d: %d items%s", day, page, count, " (not modified)" * resp.not_modified)
        if count < config.page_size:
            break
    return batch


def parse_payload(content: bytes) -> tuple[list[Listing], int]:
    """Listings in one `daily_papers` response, and the number of items rejected.

    Raises ValueError when the whole payload is unusable (not JSON, an HTML page, not an array)."""
    text = content.decode("utf-8", "replace").lstrip("\ufeff").lstrip()
    if text[:1] == "<":
        raise ValueError("got an HTML/XML page, not JSON")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise ValueError(f"invalid JSON ({str(err)[:80]})") from None
    if isinstance(doc, dict) and "error" in doc:
        raise ValueError(f"API error: {str(doc['error'])[:200]}")
    if not isinstance(doc, list):
        raise ValueError(f"expected a JSON array, got {type(doc).__name__}")
    return collect(doc, listing_from_item)


def listing_from_item(item: object) -> Listing | None:
    """One daily_papers item, older shape or newer (ai_summary, githubRepo, withdrawnAt, ...)."""
    if not isinstance(item, dict) or not isinstance(item.get("paper"), dict):
        return None
    paper = item["paper"]
    raw_id = paper.get("id")
    parsed = parse_arxiv_id(raw_id)
    arxiv_id = parsed[0] if parsed else None
    authors = paper.get("authors")
    names = []
    if isinstance(authors, list):
        names = [a.get("name") for a in authors if isinstance(a, dict) and a.get("hidden") is not True]
    return clean_listing(
        Listing(
            title=paper.get("title") or item.get("title"),
            abstract=paper.get("summary") if isinstance(paper.get("summary"), str) else "",
            arxiv_id=arxiv_id,
            version=parsed[1] if parsed else None,
            authors=names,
            published_at=paper.get("publishedAt") or item.get("publishedAt"),
            url=f"https://huggingface.co/papers/{arxiv_id}" if arxiv_id else None,
            pdf_url=f"https://arxiv.org/pdf/{arxiv_id}" if arxiv_id else None,
            code_url=paper.get("githubRepo"),
            project_url=paper.get("projectPage"),
            thumbnail_url=item.get("thumbnail") or (THUMBNAIL.format(arxiv_id) if arxiv_id else None),
            upvotes=paper.get("upvotes"),
            num_comments=item.get("numComments"),
            github_stars=paper.get("githubStars"),
            ai_summary=paper.get("ai_summary"),
            withdrawn=bool(paper.get("withdrawnAt")),
        )
    )

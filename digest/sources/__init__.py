"""Listing sources. Each one walks its origin and yields `Batch`es; `digest.sources.ingest` stores them.

A source yields batches rather than single listings so that its watermark (and the HTTP validators
of the responses behind it) move in the same transaction as the papers they cover: a run killed
half-way leaves the database consistent and the next run picks up where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib import import_module

from digest.config import SOURCE_NAMES, SourceSettings
from digest.records import Listing

MAX_DAYS_BACK = 400  # the furthest back any run re-pulls: resuming an old watermark, or `--since`


def bound_since(since: date, today: date) -> tuple[date, str | None]:
    """`since` within [today - MAX_DAYS_BACK, today], and a line saying so when it was moved (for the
    sources that walk one request per day; arXiv reads `since` as a cutoff, bounded by max_results)."""
    earliest = today - timedelta(days=MAX_DAYS_BACK)
    bounded = min(max(since, earliest), today)
    if bounded == since:
        return since, None
    why = "is in the future" if since > today else f"is more than {MAX_DAYS_BACK} days back"
    return bounded, f"--since {since.isoformat()} {why}: re-pulling from {bounded.isoformat()}"


class SourceError(Exception):
    """A source could not go on (network down, error page, unreadable payload); one line for the user."""


@dataclass
class Batch:
    listings: list[Listing] = field(default_factory=list)
    rejected: int = 0  # entries seen but not usable (malformed, not a paper)
    watermark: str | None = None  # store with this batch; None leaves the watermark where it is
    http_cache: dict[str, dict] = field(default_factory=dict)  # url -> validators, stored with the batch
    note: str = ""  # what the batch was ("2024-10-25"), for logs
    error: str | None = None  # a problem the source got past (e.g. one unreadable file), to report
    notice: str | None = None  # not a problem: what the source changed in what it was asked, to tell


@dataclass
class Cursor:
    """What a source needs to know to resume: where it stopped, and the window asked for."""

    watermark: str | None
    now: datetime
    since: date | None = None
    http_cache: dict[str, dict] = field(default_factory=dict)


def fetch(config: SourceSettings, cursor: Cursor, client=None) -> Iterator[Batch]:
    """Batches from one configured source: its module in this package (named as its `type`, imported
    when first used) reads them. `client` is a `digest.sources.http.HttpClient` for the sources that
    read the web (`needs_http`)."""
    if config.type not in SOURCE_NAMES:
        raise SourceError(f"unknown source type {config.type!r}")
    return import_module(f"{__name__}.{config.type}").fetch(config, cursor, client)


def collect(items: Iterable[object],
            convert: Callable[[object], Listing | None]) -> tuple[list[Listing], int]:
    """Convert raw items to listings; what does not convert is counted as rejected, never raised."""
    listings: list[Listing] = []
    rejected = 0
    for item in items:
        listing = convert(item)
        if listing is None:
            rejected += 1
        else:
            listings.append(listing)
    return listings, rejected

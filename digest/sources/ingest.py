"""Pull every configured source and upsert what it lists into `papers`.

- One row per paper: matched by arXiv id, else by normalised title (`title_key`). The same paper from
  two sources is one row with fields merged (`sources` lists both); `first_seen_at` stays the earliest.
- A re-fetch refreshes the mutable fields (upvotes, comments, stars); arXiv metadata of a newer
  version replaces an older one, never the other way round.
- Each batch a source yields is stored in one transaction together with the source's watermark and
  HTTP validators, so a run killed half-way leaves the database consistent and resumable.
- Bad input is counted (`skipped`) and reported, never fatal; one source failing does not stop the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from digest.config import ConfigError, Settings
from digest.lazy import lazy
from digest.records import Cleaned, Listing, SourceStateView, as_utc, iso, utcnow
from digest.sources import Batch, Cursor, SourceError, fetch
from digest.sources.clean import clean_listing
from digest.store.db import Database
from digest.store.models import SourceState
from digest.store.papers import upsert

metrics = lazy("digest.metrics")  # prometheus_client: for the runs that count, not `digest status`

log = logging.getLogger(__name__)

HTTP_CACHE_KEEP = 300  # validators kept per source (newest first)


@dataclass
class SourceReport:
    name: str
    type: str = ""
    fetched: int = 0  # entries the source returned, usable or not
    new: int = 0  # rows inserted
    updated: int = 0  # existing rows whose stored fields changed
    skipped: int = 0  # entries rejected as malformed / not a paper
    error: str | None = None  # why the source stopped early (or what it got past), one line
    stopped: bool = False  # a signal stopped it between two batches (what it read is stored)
    notes: list[str] = field(default_factory=list)  # what it changed in what it was asked (a bounded --since)
    watermark: str | None = None  # after the run

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class IngestReport:
    sources: list[SourceReport] = field(default_factory=list)
    embedded: int = 0  # papers given MiniLM vectors after the run (hybrid ranker only; set by the pipeline)

    @property
    def fetched(self) -> int:
        return sum(s.fetched for s in self.sources)

    @property
    def new(self) -> int:
        return sum(s.new for s in self.sources)

    @property
    def updated(self) -> int:
        return sum(s.updated for s in self.sources)

    @property
    def skipped(self) -> int:
        return sum(s.skipped for s in self.sources)

    @property
    def stopped(self) -> bool:
        """A signal stopped the run: some source (or sources) were not read to the end."""
        return any(s.stopped for s in self.sources)

    @property
    def errors(self) -> list[str]:
        return [f"{s.name}: {s.error}" for s in self.sources if s.error]

    @property
    def notes(self) -> list[str]:
        return [f"{s.name}: {n}" for s in self.sources for n in s.notes]

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "sources": [asdict(s) for s in self.sources],
            "stopped": self.stopped,
            "fetched": self.fetched,
            "new": self.new,
            "embedded": self.embedded,
            "updated": self.updated,
            "skipped": self.skipped,
            "errors": self.errors,
            "notes": self.notes,
        }


def ingest(
    db: Database,
    settings: Settings,
    *,
    source: str | None = None,
    since: date | None = None,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> IngestReport:
    """Run every configured source (or only `source`), `since` re-pulls a window from that day;
    `progress(n)` after each batch stored (n entries read). Once `stop` is set (a signal), the source
    being read stops after the batch it is storing (each batch is stored with the source's watermark,
    so the next run goes on from there) and the sources after it are not read.

    Raises ConfigError for an unknown source name; everything else ends up in the report."""
    if source is not None and source not in settings.sources:
        known = ", ".join(settings.sources) or "none"
        raise ConfigError(f"no source named {source!r} (configured: {known})")
    now = as_utc(now or utcnow())
    names = [source] if source else list(settings.sources)
    report = IngestReport()
    client = None
    try:
        for name in names:
            if stop is not None and stop.is_set():
                break
            cfg = settings.sources[name]
            if cfg.needs_http and client is None:
                from digest.sources.http import HttpClient

                client = HttpClient(settings.http)
            done = _run_source(db, name, cfg, client, since, now, progress, stop)
            metrics.source_run(name, done.new, done.updated, done.skipped, done.ok)
            report.sources.append(done)
    finally:
        if client is not None:
            client.close()
    return report


def source_status(db: Database, settings: Settings) -> list[dict[str, Any]]:
    """One dict per configured source: name, type, watermark, last run / success / error, totals.

    Datetimes are ISO 8601 strings (UTC) or None, so the list goes straight to JSON."""
    states = source_states(db)
    out = []
    for name, cfg in settings.sources.items():
        st = states.get(name)
        out.append(
            {
                "name": name,
                "type": cfg.type,
                "target": cfg.target(),
                "watermark": st.watermark if st else None,
                "last_run_at": iso(st.last_run_at) if st else None,
                "last_success_at": iso(st.last_success_at) if st else None,
                "last_error_at": iso(st.last_error_at) if st else None,
                "last_error": st.last_error if st else None,
                "total_fetched": st.total_fetched if st else 0,
                "total_new": st.total_new if st else 0,
                "total_updated": st.total_updated if st else 0,
                "total_skipped": st.total_skipped if st else 0,
            }
        )
    return out


def source_states(db: Database) -> dict[str, SourceStateView]:
    with db.session() as s:
        return {st.name: SourceStateView(
            st.name, st.watermark, st.last_run_at, st.last_success_at, st.last_error_at, st.last_error,
            st.total_fetched or 0, st.total_new or 0, st.total_updated or 0, st.total_skipped or 0,
            dict(st.http_cache or {}))
            for st in s.scalars(select(SourceState))}


# --- one source -----------------------------------------------------------------------------------


def _run_source(db: Database, name: str, cfg: Any, client: Any, since: date | None,
                now: datetime, progress: Callable[[int], None] | None = None,
                stop: threading.Event | None = None) -> SourceReport:
    report = SourceReport(name=name, type=cfg.type)
    problems: list[str] = []
    stopped: str | None = None
    try:
        state = _load_state(db, name)
        cursor = Cursor(watermark=state.watermark, now=now, since=since, http_cache=state.http_cache)
        report.watermark = state.watermark
        for batch in fetch(cfg, cursor, client):
            new, updated, rejected = _store_batch(db, name, batch, now)
            report.fetched += len(batch.listings) + batch.rejected
            if progress:
                progress(len(batch.listings) + batch.rejected)
            report.new += new
            report.updated += updated
            report.skipped += rejected
            if batch.watermark and (report.watermark is None or batch.watermark > report.watermark):
                report.watermark = batch.watermark
            if batch.error:
                problems.append(batch.error)
            if batch.notice and batch.notice not in report.notes:
                report.notes.append(batch.notice)
                log.info("source %s: %s", name, batch.notice)
            log.debug("%s %s: %d listings, %d new, %d updated", name, batch.note, len(batch.listings), new,
                      updated)
            if stop is not None and stop.is_set():
                report.stopped = True
                break
    except SourceError as err:
        stopped = str(err)
    except Exception as err:  # a bug or a database problem: report it, let the other sources run
        log.exception("source %s failed", name)
        stopped = f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}"
    if stopped:
        problems.append(stopped)
    report.error = "; ".join(problems)[:1000] if problems else None
    try:
        _finish_state(db, name, now, report.error, ok=stopped is None and not report.stopped)
    except Exception:  # the database is gone; the report still tells the caller
        log.exception("source %s: could not record the run", name)
    level = logging.WARNING if report.error else logging.INFO
    log.log(
        level, "source %s: %d fetched, %d new, %d updated, %d skipped%s",
        name, report.fetched, report.new, report.updated, report.skipped,
        f"; error: {report.error}" if report.error else "",
    )
    return report


@dataclass(frozen=True)
class _State:
    """Where a source left off: what its next run starts from."""

    watermark: str | None
    http_cache: dict


def _load_state(db: Database, name: str) -> _State:
    """The source's stored state; its row is created on first use (another process may race us)."""
    for _ in range(2):
        with db.session() as s:
            state = s.get(SourceState, name)
            if state is not None:
                return _State(state.watermark, dict(state.http_cache or {}))
        try:
            with db.session() as s:
                s.add(SourceState(name=name, http_cache={}))
        except IntegrityError:  # another process created it first
            pass
    return _State(None, {})


def _finish_state(db: Database, name: str, now: datetime, error: str | None, *, ok: bool) -> None:
    with db.session() as s:
        state = s.get(SourceState, name)
        state.last_run_at = now
        if ok:
            state.last_success_at = now
        if error:
            state.last_error = error
            state.last_error_at = now


def _store_batch(db: Database, name: str, batch: Batch, now: datetime) -> tuple[int, int, int]:
    """Upsert one batch and move the source's state with it, in one transaction. Returns new, updated,
    rejected. A unique-key race with another ingest process is retried once."""
    listings: list[Listing] = []
    rejected = batch.rejected
    for raw in batch.listings:  # a source's own listings are clean (`Cleaned`); anything else is cleaned here
        listing = raw if isinstance(raw, Cleaned) else clean_listing(raw)
        if listing is None:
            rejected += 1
        else:
            listing.source = name
            listings.append(listing)
    for attempt in (1, 2):
        try:
            with db.session() as s:
                new, updated = upsert(s, listings, now)
                _advance_state(s, name, batch, len(batch.listings) + batch.rejected, new, updated, rejected)
            return new, updated, rejected
        except (IntegrityError, OperationalError):
            if attempt == 2:
                raise
            log.info("source %s: concurrent write, retrying batch %s", name, batch.note)
    raise AssertionError("unreachable")  # pragma: no cover


def _advance_state(s: Session, name: str, batch: Batch, fetched: int, new: int, updated: int,
                   skipped: int) -> None:
    state = s.get(SourceState, name, with_for_update=s.get_bind().dialect.name == "postgresql")
    if state is None:
        state = SourceState(name=name, http_cache={})
        s.add(state)
    if batch.watermark and (state.watermark is None or batch.watermark > state.watermark):
        state.watermark = batch.watermark  # never backwards: `--since` re-pulls leave it alone
    if batch.http_cache:
        cache = {k: v for k, v in (state.http_cache or {}).items() if k not in batch.http_cache}
        cache.update(batch.http_cache)
        state.http_cache = dict(list(cache.items())[-HTTP_CACHE_KEEP:])
    state.total_fetched = (state.total_fetched or 0) + fetched
    state.total_new = (state.total_new or 0) + new
    state.total_updated = (state.total_updated or 0) + updated
    state.total_skipped = (state.total_skipped or 0) + skipped

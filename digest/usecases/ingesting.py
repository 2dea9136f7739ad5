"""`digest ingest` and the scheduler's ingest jobs: pull the sources, store the papers, analyse their
terms and embed them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime

from digest.config import Settings
from digest.ranking import semantic, stored_terms, term_workers
from digest.records import utcnow
from digest.sources import ingest as ingest_stage
from digest.sources.ingest import IngestReport
from digest.store import terms
from digest.store.db import Database
from digest.usecases.embedding import embed_papers, encoder

log = logging.getLogger("digest.pipeline")


def ingest(db: Database, settings: Settings, *, source: str | None = None, since: date | None = None,
           now: datetime | None = None, progress: Callable[[str], Callable[[int], None]] | None = None,
           ) -> IngestReport:
    """Pull the configured sources (`digest.sources.ingest`), then embed what they stored for the
    hybrid ranker, so planning does not wait for it. The stored papers' terms are analysed while the
    sources are read (in worker processes past the first batch, see ranking.term_workers).
    `progress(step)`, when given, returns the callback of each step ("ingest"; "terms": the papers
    whose analysis is written after the sources are read; "embedding"): n more papers done."""
    now = now or utcnow()
    step = progress or (lambda _: _nothing)
    with term_workers.Analysis() as analysis:  # what this run stores, analysed as it goes (planning reads it)
        with terms.Follow(db, stored_terms.ANALYSER, analysis, since=now) as follow:
            read = step("ingest")
            report = ingest_stage.ingest(db, settings, source=source, since=since, now=now,
                                         progress=lambda n: (read(n), follow.poll()))
            follow.progress = step("terms")  # those still in flight when the reading ends
        if report.updated:  # rows stored before this run (older ids) whose text it changed
            terms.ensure(db, stored_terms.ANALYSER, analysis, since=now, progress=follow.progress)
    if semantic.wanted(settings.digest.ranker):
        try:
            report.embedded = embed_papers(db, since=now, encoder=encoder(settings),  # what this run stored
                                           progress=step("embedding"))
        except Exception as err:  # noqa: BLE001 - the papers are stored; embedding is an optimisation
            log.warning("ingest: embedding new papers failed: %s", err)
    log.info("ingest: %d fetched, %d new, %d updated, %d skipped, %d embedded, %d source errors",
             report.fetched, report.new, report.updated, report.skipped, report.embedded, len(report.errors))
    return report


def _nothing(n: int) -> None:
    """No progress to tell."""


def ranked_by(settings: Settings) -> str:
    """What the settings rank with in this install, said to the admin: "hybrid (lexical + ...)"."""
    return semantic.describe(settings.digest.ranker, settings.ranking.model)


def store_terms(db: Database, since: datetime | None = None,
                progress: Callable[[int], None] | None = None) -> int:
    """Analyse and store the index terms (digest.ranking.stored_terms) of papers updated since `since`
    that lack current ones (after an analyser change: every paper, as the runs reach it), so planning
    reads them back instead of analysing every candidate again."""
    with term_workers.Analysis() as analysis:
        return terms.ensure(db, stored_terms.ANALYSER, analysis, since=since, progress=progress)


def source_status(db: Database, settings: Settings) -> list[dict]:
    """Each configured source's last run, success, error, watermark and totals (`digest sources`)."""
    return ingest_stage.source_status(db, settings)

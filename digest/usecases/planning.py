"""Planning: who is due, which papers are new to them, ranked; the editions written to the ledger.

Also what planning would do, without writing: `digest send --dry-run` and `digest due`.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from digest.config import Settings
from digest.lazy import lazy
from digest.planning import planner
from digest.planning.planner import PlanReport
from digest.planning.schedule import parse_instant
from digest.read_ahead import read_ahead
from digest.records import DeliveryStatus, Paper, Subscriber, utcnow
from digest.wording import subject_line

if TYPE_CHECKING:
    from digest.planning.candidates import Selection
    from digest.store.db import Database
    from digest.usecases.reads import Reads

# the ledger and the store (SQLAlchemy) load when a plan needs them: `digest due` may read through
# digest.store.quick_read (digest.usecases.reads)
ledger = lazy("digest.delivery.ledger")
paper_store = lazy("digest.store.papers")
subscriber_store = lazy("digest.store.subscribers")

# the ranking and its stores load when a plan needs them: `digest due` starts without numpy or scipy
candidates = lazy("digest.planning.candidates")
semantic = lazy("digest.ranking.semantic")
stored_terms = lazy("digest.ranking.stored_terms")
terms_store = lazy("digest.store.terms")
embedding = lazy("digest.usecases.embedding")
ingesting = lazy("digest.usecases.ingesting")
message = lazy("digest.mail.message")  # the mail stack: a plan that writes, not `digest due`

log = logging.getLogger("digest.pipeline")

BATCH = 4000  # subscribers planned per batch: memory stays flat as the list grows


def candidate_pool(db: Database, settings: Settings, now: datetime, newest: int | None = None,
                   ) -> candidates.Pool:
    """A run's papers, read and indexed once: every listed paper first seen since the earliest start
    any edition can have, and the papers of subscribers' feedback outside that window. With `newest`
    (the pages' bounded previews, digest.usecases.preview_pool): only that many of the window's newest
    papers, and no feedback papers from outside it. The window's papers are read without their long
    texts (`paper_store.load_light`): the index is built from their stored terms, and an abstract is
    read by id when something needs it (`StoredTexts`)."""
    with db.session() as s:
        start = candidates.earliest_start(settings.digest, now)
        papers = paper_store.load_light(s, seen_after=start, newest=newest)
        rated = sorted(paper_store.with_feedback(s) - {p.id for p in papers}) if newest is None else []
        extra = list(paper_store.by_ids(s, rated).values())
    texts = StoredTexts(db, [p.id for p in [*papers, *extra]])
    vecs = None
    if semantic.wanted(settings.digest.ranker):
        try:
            whole = [replace(p, abstract=t[1]) for p, t in zip([*papers, *extra], texts, strict=True)]
            vecs = embedding.paper_vectors(db, whole, embedding.encoder(settings))
            del whole
        except Exception as err:  # noqa: BLE001 - the digest still goes out, ranked on words alone
            log.warning("planner: paper vectors unavailable (%s); ranking lexically this time", err)
    return candidates.pool(settings.digest, papers, extra, vecs, now,
                           analysed=stored_terms_of(db, [*papers, *extra]), texts=texts)


class StoredTexts(Sequence):
    """(title, abstract) of each of a run's papers, by row, read from the store when asked: a window of
    up to WHOLE papers all at once at the first ask (one query, not one per explained paper: a
    10,000-paper run explains thousands), a larger one a paper at a time, the last KEPT kept (a whole
    pass reads them a chunk at a time): the texts of a large window are never all in memory.
    Explanations ask for their picks' texts, a feedback model for all."""

    WHOLE = 20_000
    KEPT = 4096

    def __init__(self, db: Database, ids: Sequence[int]) -> None:
        self.db, self.ids = db, list(ids)
        self._kept: OrderedDict[int, tuple[str, str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, row: int) -> tuple[str, str]:
        got = self._kept.get(row)
        if got is None:
            if len(self.ids) <= self.WHOLE:
                self._kept.update(enumerate(self))
                return self._kept[row]
            with self.db.session() as s:
                got = self._kept[row] = paper_store.texts(s, [self.ids[row]])[self.ids[row]]
            if len(self._kept) > self.KEPT:
                self._kept.popitem(last=False)
        return got

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for start in range(0, len(self.ids), 5000):
            part = self.ids[start : start + 5000]
            with self.db.session() as s:
                got = paper_store.texts(s, part)
            yield from (got[i] for i in part)


def stored_terms_of(db: Database, papers: Sequence[Paper]) -> Iterator:
    """Each paper's index terms (stored_terms.Analysed), in order, read a chunk at a time: its stored
    record, or (none stored, or a stale one) analysed here from its text, read beside the records; read
    and unpacked in a thread, ahead of the index that takes them (digest.read_ahead)."""
    def each() -> Iterator:
        for got in terms_store.stream(db, stored_terms.ANALYSER, [p.id for p in papers]):
            yield stored_terms.analyse_paper(*got) if isinstance(got, tuple) else stored_terms.unpack(got)
    return read_ahead(each())


def select(db: Database, settings: Settings, run: candidates.Pool, subs: Sequence[Subscriber], now: datetime,
           ) -> dict[int, Selection]:
    """Rank the papers new to each subscriber of a batch against the run's pool."""
    if not subs:
        return {}
    past = ledger.history(db, [s.id for s in subs])
    starts = {s.id: candidates.window_start(settings.digest, now,
                                            past[s.id].window_end if s.id in past else None,
                                            whole_week=s.best_of_week) for s in subs}
    sent = ledger.sent_papers(db, [s.id for s in subs], sorted(run.papers))
    return candidates.select(settings.digest, run, subs, starts, sent)


def plan(db: Database, settings: Settings, *, now: datetime | None = None, email: str | None = None,
         dry_run: bool = False, due_only: bool = False, stop: threading.Event | None = None,
         progress: Callable[[int], None] | None = None) -> PlanReport:
    """Create this period's edition for every mailable subscriber who has something new.

    Without `due_only` (`digest send`), everyone whose current period has no edition yet gets one now,
    whatever their hour or day. With `due_only` (the scheduler), only subscribers whose slot has come.
    Both are idempotent through the ledger's unique (subscriber, period) key. With `dry_run`, nothing
    is written: `report.editions` says who would get what. Once `stop` is set, no further batch is
    planned (each batch is written in one transaction: the next run plans the rest). `progress(n)`: n
    more subscribers looked at.
    """
    now = now or utcnow()
    report = PlanReport()
    log.info("planning editions%s", f" for {email}" if email else "")
    domain = message.sender_domain(settings.mail.from_address)
    if not dry_run and semantic.wanted(settings.digest.ranker):
        try:  # embed the candidate window's papers now, outside the planning transactions
            embedding.embed_papers(db, since=now - timedelta(days=settings.digest.max_lookback_days),
                                   encoder=embedding.encoder(settings))
        except Exception as err:  # noqa: BLE001 - planning embeds in memory or ranks lexically
            log.warning("planner: could not store paper vectors (%s)", err)
    if not dry_run:  # analyse what ingest did not (papers stored before paper_terms): this run and the next
        ingesting.store_terms(db, since=now - timedelta(days=settings.digest.max_lookback_days))
    run: candidates.Pool | None = None  # read and indexed once, when the first batch has someone to plan
    after = 0
    while not (stop is not None and stop.is_set()) and (subs := _mailable_batch(db, now, email, after)):
        after = subs[-1].id
        if progress:
            progress(len(subs))
        with db.session() as s:
            suppressed = subscriber_store.suppressed(s, [x.email for x in subs])
        past = ledger.history(db, [x.id for x in subs])
        due = planner.dues(subs, now, {sid: h.last for sid, h in past.items()})
        existing = ledger.existing(db, {sid: d.period for sid, d in due.items() if d is not None})
        todo = planner.triage(subs, due, suppressed, existing, report, due_only=due_only)
        if todo and run is None:
            run = candidate_pool(db, settings, now)
        selections = select(db, settings, run, todo, now) if todo and run else {}
        editions = planner.editions(todo, due, selections, now, report, default_max=settings.digest.max_items)
        if dry_run:
            report.quiet += sum(e.status == DeliveryStatus.QUIET for e in editions)
            report.editions += editions
            report.papers.update(run.papers if run else {})
            continue
        written, already = ledger.write(db, editions, domain)
        report.planned += len(written)
        report.already += already
        for e in written:
            if e.status == DeliveryStatus.QUIET:
                report.planned -= 1
                report.quiet += 1
                log.info("edition skipped subscriber=%s period=%s: %s", e.subscriber_id, e.period, e.note)
            else:
                log.info("edition planned subscriber=%s period=%s papers=%d", e.subscriber_id, e.period,
                         len(e.picks))
    return report


def _mailable_batch(db: Database, now: datetime, email: str | None, after: int) -> list[Subscriber]:
    with db.session() as s:
        return subscriber_store.mailable_batch(s, now, after_id=after, limit=BATCH, email=email)


def dry_run_rows(report: PlanReport) -> list[dict]:
    """Who would get what (`digest send --dry-run`): address, period, papers and subject."""
    return [{"email": e.email, "period": e.period, "papers": len(e.picks),
             "subject": subject_line(len(e.picks), report.papers[e.picks[0].paper_id].title,
                                     bool(e.picks[0].topic))
             if e.picks else f"(quiet: {e.note}; nothing sent)"}
            for e in report.editions]


def instant(text: str | None) -> datetime:
    """The instant `digest due --at` names (ISO 8601; no offset: UTC; None: now)."""
    return parse_instant(text)


def due_at(reads: Reads, now: datetime, *, email: str | None = None) -> list[dict]:
    """Every mailable subscriber at `now`: due or not, for which period, and why. Nothing is written."""
    out: list[dict] = []
    after = 0
    while subs := reads.mailable_batch(now, after, BATCH, email):
        after = subs[-1].id
        suppressed = reads.suppressed([x.email for x in subs])
        last = reads.last_editions([x.id for x in subs])
        due = planner.dues(subs, now, last)
        out += [planner.due_row(x, due[x.id], last.get(x.id), x.email in suppressed) for x in subs]
    return out

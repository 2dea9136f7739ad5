"""The entry points the shells call (CLI, scheduler, web, demo): ingest, plan, send, one whole pass,
preview, the archive and the pages' views, status, due-ness and housekeeping.

Each function reads what its stage needs from the store and the ledger, hands plain records to the
pure stages (planning, ranking, rendering) and writes what they decide through the ledger. No ORM
row and no open session leaves this module.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from digest import config, metrics
from digest.bulk import few_collections
from digest.config import ArxivSource, ConfigError, Settings
from digest.delivery import bounces, ledger
from digest.delivery.sender import (
    STOPPING,
    SendingProcesses,
    SendReport,
    links_for,
    message,
    render,
    webhook_message,
    worker_name,
)
from digest.delivery.sender import send as send_deliveries
from digest.mail import signing
from digest.mail.message import make_message_id, sender_domain
from digest.mail.transport import Transport
from digest.planning import candidates, planner
from digest.planning.candidates import Selection
from digest.planning.planner import PlanReport
from digest.planning.schedule import parse_instant
from digest.ranking import evaluate, semantic, tryout
from digest.records import DeliveryStatus, Edition, Paper, Pick, Subscriber, SubscriberStatus, utcnow
from digest.render import Rendered, default_renderer
from digest.render import feed as atom
from digest.render.compose import one_line, paper_url, subject_line
from digest.sources import SourceError
from digest.sources import arxiv as arxiv_source
from digest.sources import ingest as ingest_stage
from digest.sources.http import HttpClient
from digest.sources.ingest import IngestReport
from digest.store import jobs, vectors
from digest.store import papers as paper_store
from digest.store import subscribers as subscriber_store
from digest.store.db import Database, Schema, SchemaError, SchemaState, open_checked
from digest.subscriptions import seeds, subscribers

__all__ = ["STOPPING", "Database", "IngestReport", "PassReport", "PlanReport", "SendReport", "archive_html",
           "delivery_status", "due_at", "evaluate", "feed", "first_preview", "housekeeping", "ingest", "load_settings", "open_database", "parse_instant",
           "pending_count", "plan", "preview", "Schema", "SchemaError", "SchemaState", "recent_editions", "run_pass", "send", "status", "tryout", "utcnow",
           "worker_name"]

log = logging.getLogger("digest.pipeline")

BATCH = 4000  # subscribers planned per batch: memory stays flat as the list grows
PENDING_KEEP = timedelta(days=7)  # unconfirmed sign-ups are forgotten after this (confirm links last 3 days)


# ---------------------------------------------------------------------------------------- settings


def load_settings(path: str | None = None) -> Settings:
    """The settings (`config.load`), refused at start when they ask for a ranker this install lacks."""
    settings = config.load(path)
    try:
        uses_model = semantic.wanted(settings.digest.ranker)  # the one rule for which ranker an install can run
    except RuntimeError as err:
        raise ConfigError(f"digest.ranker: {err}") from None
    if uses_model:
        try:
            encoder(settings).check()  # found offline, or refused now rather than at the first plan
        except semantic.ModelError as err:
            raise ConfigError(f"ranking.model: {err}") from None
    return settings


def encoder(settings: Settings) -> semantic.Encoder:
    """The embedding model of `[ranking]` (model, device)."""
    return semantic.Encoder(settings.ranking.model, settings.ranking.device)


def open_database(settings: Settings, schema: Schema = "create") -> tuple[Database, SchemaState]:
    """The configured database and the schema state it was found in (`store.db.open_checked`): reading
    commands `check` (nothing is created), writing ones `create` (a fresh database gets the schema),
    `digest init` `upgrade`s. Raises SchemaError, one line that points at `digest init`."""
    return open_checked(settings.database.url, schema)


# ------------------------------------------------------------------------------------------ ingest


def ingest(db: Database, settings: Settings, *, source: str | None = None, since: date | None = None,
           now: datetime | None = None) -> IngestReport:
    """Pull the configured sources (`digest.sources.ingest`), then embed what they stored for the
    hybrid ranker, so planning does not wait for it."""
    now = now or utcnow()
    report = ingest_stage.ingest(db, settings, source=source, since=since, now=now)
    if semantic.wanted(settings.digest.ranker):
        try:
            report.embedded = embed_papers(db, since=now, encoder=encoder(settings))  # what this run stored
        except Exception as err:  # noqa: BLE001 - the papers are stored; embedding is an optimisation
            log.warning("ingest: embedding new papers failed: %s", err)
    log.info("ingest: %d fetched, %d new, %d updated, %d skipped, %d embedded, %d source errors",
             report.fetched, report.new, report.updated, report.skipped, report.embedded, len(report.errors))
    return report


def source_status(db: Database, settings: Settings) -> list[dict]:
    """Each configured source's last run, success, error, watermark and totals (`digest sources`)."""
    return ingest_stage.source_status(db, settings)


def embed_papers(db: Database, since: datetime | None = None,
                 encoder: semantic.Encoder = semantic.DEFAULT) -> int:
    """Embed and store, with `encoder`'s model, the vectors of papers updated since `since` that lack
    current ones under that model (after a model change: every paper, as the runs reach it)."""
    return vectors.ensure(db, encoder.key, lambda docs: semantic.pack_papers(docs, encoder), since=since)


def paper_vectors(db: Database, papers: Sequence[Paper],
                  encoder: semantic.Encoder = semantic.DEFAULT) -> semantic.PaperVectors:
    """The papers' vectors under `encoder`'s model, in order: stored ones read back; a paper not
    embedded yet (or whose text changed since) is embedded in memory and not stored, so planning
    writes nothing here."""
    with db.session() as s:
        packed = vectors.stored(s, encoder.key, papers)
    todo = [p for p in papers if p.id not in packed]
    blocks = {pid: semantic.unpack(b, encoder.dim) for pid, b in packed.items()}
    if todo:
        computed = semantic.PaperVectors.of([(p.title, p.abstract) for p in todo], encoder)
        blocks.update((p.id, computed.row(i)) for i, p in enumerate(todo))
        log.info("embedded %d papers in memory (%d read back)", len(todo), len(packed))
    return semantic.PaperVectors.from_rows([blocks[p.id] for p in papers], encoder)


# ---------------------------------------------------------------------------------------- planning


def candidate_pool(db: Database, settings: Settings, now: datetime) -> candidates.Pool:
    """A run's papers, read and indexed once: every listed paper first seen since the earliest start
    any edition can have, and the papers of subscribers' feedback outside that window."""
    with db.session() as s:
        papers = paper_store.load(s, seen_after=candidates.earliest_start(settings.digest, now))
        extra = list(paper_store.by_ids(s, sorted(paper_store.with_feedback(s) - {p.id for p in papers})).values())
    vecs = None
    if semantic.wanted(settings.digest.ranker):
        try:
            vecs = paper_vectors(db, [*papers, *extra], encoder(settings))
        except Exception as err:  # noqa: BLE001 - the digest still goes out, ranked on words alone
            log.warning("planner: paper vectors unavailable (%s); ranking lexically this time", err)
    return candidates.pool(settings.digest, papers, extra, vecs, now)


def select(db: Database, settings: Settings, run: candidates.Pool, subs: Sequence[Subscriber], now: datetime,
           ) -> dict[int, Selection]:
    """Rank the papers new to each subscriber of a batch against the run's pool."""
    if not subs:
        return {}
    past = ledger.history(db, [s.id for s in subs])
    starts = {s.id: candidates.window_start(settings.digest, now, past[s.id].window_end if s.id in past else None,
                                            whole_week=s.best_of_week) for s in subs}
    sent = ledger.sent_papers(db, [s.id for s in subs], sorted(run.papers))
    return candidates.select(settings.digest, run, subs, starts, sent)


def plan(db: Database, settings: Settings, *, now: datetime | None = None, email: str | None = None,
         dry_run: bool = False, due_only: bool = False) -> PlanReport:
    """Create this period's edition for every mailable subscriber who has something new.

    Without `due_only` (`digest send`), everyone whose current period has no edition yet gets one now,
    whatever their hour or day. With `due_only` (the scheduler), only subscribers whose slot has come.
    Both are idempotent through the ledger's unique (subscriber, period) key. With `dry_run`, nothing
    is written: `report.editions` says who would get what.
    """
    now = now or utcnow()
    report = PlanReport()
    domain = sender_domain(settings.mail.from_address)
    if not dry_run and semantic.wanted(settings.digest.ranker):
        try:  # embed the candidate window's papers now, outside the planning transactions
            embed_papers(db, since=now - timedelta(days=settings.digest.max_lookback_days), encoder=encoder(settings))
        except Exception as err:  # noqa: BLE001 - planning embeds in memory or ranks lexically
            log.warning("planner: could not store paper vectors (%s)", err)
    run: candidates.Pool | None = None  # read and indexed once, when the first batch has someone to plan
    after = 0
    while subs := _mailable_batch(db, now, email, after):
        after = subs[-1].id
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
            report.quiet += sum(e.status == DeliveryStatus.SKIPPED for e in editions)
            report.editions += editions
            report.papers.update(run.papers if run else {})
            continue
        written, already = ledger.write(db, editions, domain)
        report.planned += len(written)
        report.already += already
        for e in written:
            if e.status == DeliveryStatus.SKIPPED:
                report.planned -= 1
                report.quiet += 1
                log.info("edition skipped subscriber=%s period=%s: %s", e.subscriber_id, e.period, e.note)
            else:
                log.info("edition planned subscriber=%s period=%s papers=%d", e.subscriber_id, e.period, len(e.picks))
    return report


def _mailable_batch(db: Database, now: datetime, email: str | None, after: int) -> list[Subscriber]:
    with db.session() as s:
        return subscriber_store.mailable_batch(s, now, after_id=after, limit=BATCH, email=email)


def dry_run_rows(report: PlanReport) -> list[dict]:
    """Who would get what (`digest send --dry-run`): address, period, papers and subject."""
    return [{"email": e.email, "period": e.period, "papers": len(e.picks),
             "subject": subject_line(len(e.picks), report.papers[e.picks[0].paper_id].title, bool(e.picks[0].topic))
             if e.picks else f"(quiet: {e.note}; nothing sent)"}
            for e in report.editions]


def due_at(db: Database, now: datetime, *, email: str | None = None) -> list[dict]:
    """Every mailable subscriber at `now`: due or not, for which period, and why. Nothing is written."""
    out: list[dict] = []
    after = 0
    while subs := _mailable_batch(db, now, email, after):
        after = subs[-1].id
        with db.session() as s:
            suppressed = subscriber_store.suppressed(s, [x.email for x in subs])
        last = {sid: h.last for sid, h in ledger.history(db, [x.id for x in subs]).items()}
        due = planner.dues(subs, now, last)
        out += [planner.due_row(x, due[x.id], last.get(x.id), x.email in suppressed) for x in subs]
    return out


# ----------------------------------------------------------------------------------------- sending


def send(db: Database, settings: Settings, **kwargs) -> SendReport:
    """Send every due delivery in the ledger (`digest.delivery.sender.send`)."""
    return send_deliveries(db, settings, **kwargs)


def pending_count(db: Database, email: str | None = None, now: datetime | None = None) -> int:
    """How many deliveries a `send` now would take (for its progress bar)."""
    return ledger.due_count(db, now or utcnow(), email)


@dataclass
class PassReport:
    """One whole pass: what was ingested (if asked), planned and sent."""

    ingest: IngestReport | None = None
    plan: PlanReport = field(default_factory=PlanReport)
    send: SendReport = field(default_factory=SendReport)
    stopped: bool = False  # `stop` was set before sending began: nothing was sent
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of each step that ran

    @property
    def errors(self) -> list[str]:
        return [*(self.ingest.errors if self.ingest else []), *self.send.errors]

    def counts(self) -> dict:
        """What `digest send` / `digest run` print: sent, retried, failed, suppressed (at planning or
        sending), skipped (nothing new), quiet (fewer papers than the subscriber's minimum: recorded,
        nothing sent, the papers roll over), errors."""
        s = self.send
        return {"sent": s.sent, "retried": s.retried, "failed": s.failed,
                "suppressed": s.suppressed + self.plan.suppressed, "skipped": self.plan.skipped,
                "quiet": self.plan.quiet, "errors": s.errors,
                "planned": self.plan.planned, "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "by_transport": s.by_transport}


@few_collections()  # the whole pass: planning and sending make millions of small objects
def run_pass(db: Database, settings: Settings, *, ingest_first: bool = False, email: str | None = None,
             due_only: bool = False, dry_run: bool = False, now: datetime | None = None,
             transport: Transport | Sequence[Transport] | None = None, stop: threading.Event | None = None,
             progress: Callable[[int], None] | None = None,
             on_planned: Callable[[int], None] | None = None, workers: int | None = None) -> PassReport:
    """Ingest (if `ingest_first`), plan, then send what is due: the one pass behind `digest send`,
    `digest run`, the scheduler's tick and the demo. `on_planned(n)` is told how many deliveries the
    send will take before it starts (a progress bar's length); `stop` ends sending early."""
    report = PassReport()
    n = workers or settings.mail.workers
    # Several sending processes start now and warm up (imports, templates) while this one plans; not
    # for the scheduler's tick (`due_only`), which mostly finds nothing due.
    early = n > 1 and transport is None and not dry_run and not due_only
    ahead = SendingProcesses(db, settings, n, now=now, email=email) if early else None
    try:
        clock = time.perf_counter()
        if ingest_first:
            report.ingest = ingest(db, settings, now=now)
            report.seconds["ingest"] = time.perf_counter() - clock
        clock = time.perf_counter()
        report.plan = plan(db, settings, now=now, email=email, dry_run=dry_run, due_only=due_only)
        report.seconds["plan"] = time.perf_counter() - clock
        if dry_run:
            return report
        if stop is not None and stop.is_set():
            report.stopped = True
            return report
        pending = pending_count(db, email, now)
        if on_planned is not None:
            on_planned(pending)
        if pending:
            clock = time.perf_counter()
            if ahead is not None:
                report.send, ahead = ahead.run(progress, stop), None
            else:
                report.send = send_deliveries(db, settings, now=now, email=email, transport=transport, stop=stop,
                                              progress=progress, workers=workers)
            report.seconds["send"] = time.perf_counter() - clock
        return report
    finally:
        if ahead is not None:
            ahead.cancel()


# ------------------------------------------------------------------------------- previews and pages


def preview(db: Database, settings: Settings, *, email: str | None = None, topics: Sequence[str] = (),
            excludes: Sequence[str] = (), now: datetime | None = None) -> tuple[Rendered, bytes]:
    """What a subscriber (or a made-up one with these topics) would get now, and the message exactly as
    it would go on the wire (DKIM-signed when a key is configured), or for a team channel the JSON it
    would be posted; nothing is stored or sent."""
    now = now or utcnow()
    if email:
        with db.session() as s:
            sub = subscriber_store.by_email(s, email)
        if sub is None:
            raise LookupError(f"no subscriber {email}")
    else:
        sub = Subscriber(id=0, email="preview@example.com", topics=tuple(topics), excludes=tuple(excludes))
    run = candidate_pool(db, settings, now)
    sel = select(db, settings, run, [sub], now)[sub.id]
    papers = run.papers
    edition = Edition(subscriber_id=sub.id, email=sub.email, period=planner.period_of(sub, now),
                      window_start=sel.window_start, window_end=now, planned_at=now, picks=tuple(sel.picks),
                      trending=tuple(sel.trending), id=0, message_id=_preview_message_id(settings))
    if sub.by_webhook:  # the email's look (html, text) and the payload, from the same content
        links = links_for(settings)
        _, payload = webhook_message(settings, links, sub, edition, papers)
        return render(settings, links, default_renderer(), sub, edition, papers), payload
    return message(settings, links_for(settings), default_renderer(), sub, edition, papers, now,
                   signing.from_settings(settings))


def _preview_message_id(settings: Settings) -> str:
    return make_message_id(0, "preview", sender_domain(settings.mail.from_address))


@dataclass
class Item:
    """A paper as the pages list it."""

    title: str
    url: str
    why: str = ""


@dataclass
class SentEdition:
    """A sent edition as the preferences page lists it."""

    label: str
    subject: str
    archive_url: str
    items: list[Item] = field(default_factory=list)


def _items(picks: Sequence[Pick], papers: dict[int, Paper]) -> list[Item]:
    return [Item(one_line(papers[p.paper_id].title), paper_url(papers[p.paper_id]), p.why)
            for p in picks if p.paper_id in papers]


def first_preview(db: Database, settings: Settings, subscriber_id: int,
                  now: datetime | None = None) -> tuple[list[Item], list[Item]]:
    """The picks and 'also trending' papers the subscriber's next digest would hold now (nothing is stored)."""
    now = now or utcnow()
    with db.session() as s:
        sub = subscriber_store.by_id(s, subscriber_id)
    if sub is None:
        raise LookupError(f"no subscriber #{subscriber_id}")
    run = candidate_pool(db, settings, now)
    sel = select(db, settings, run, [sub], now)[subscriber_id]
    return _items(sel.picks, run.papers), _items(sel.trending, run.papers)


def recent_editions(db: Database, settings: Settings, subscriber_id: int, limit: int = 3) -> list[SentEdition]:
    """The last editions sent to a subscriber, newest first, each with its papers and archive link."""
    links = links_for(settings)
    editions = ledger.recent(db, subscriber_id, limit, status=DeliveryStatus.SENT)
    with db.session() as s:
        papers = paper_store.by_ids(s, sorted({p.paper_id for e in editions for p in e.picks}))
    return [SentEdition(label=e.sent_at.strftime("%d %b %Y") if e.sent_at else e.period, subject=e.subject or "",
                        archive_url=links.archive(subscriber_id, e.id or 0), items=_items(e.picks, papers))
            for e in editions]


@dataclass(frozen=True)
class DeliveryView:
    """"Why no email today?" on the preferences page: the last edition sent, the last slot's outcome
    (`planner.slot_status`), the next slot."""

    last_sent_at: datetime | None
    last_subject: str | None
    status: planner.SlotStatus


def delivery_status(db: Database, settings: Settings, subscriber_id: int, now: datetime | None = None) -> DeliveryView:
    """A subscriber's delivery status, by the rules planning and `digest due` use; nothing is written."""
    now = now or utcnow()
    with db.session() as s:
        sub = subscriber_store.by_id(s, subscriber_id)
        if sub is None:
            raise LookupError(f"no subscriber #{subscriber_id}")
        suppression = subscriber_store.suppression(s, sub.email)
    past = ledger.history(db, [sub.id]).get(sub.id)
    recent = ledger.recent(db, sub.id, 3)
    sent = ledger.recent(db, sub.id, 1, status=DeliveryStatus.SENT)

    def news() -> planner.News:
        run = candidate_pool(db, settings, now)
        sel = select(db, settings, run, [sub], now)[sub.id]
        had = ledger.sent_papers(db, [sub.id], sorted(run.papers))[sub.id]
        return planner.News(fresh=candidates.fresh(run, sel.window_start, had), picks=len(sel.picks))

    status = planner.slot_status(sub, now, past.last if past else None, recent, suppression, news)
    return DeliveryView(last_sent_at=sent[0].sent_at if sent else None, last_subject=sent[0].subject if sent else None,
                        status=status)


FEED_EDITIONS = 10  # a feed lists the papers of this many latest sent editions


@dataclass(frozen=True)
class FeedDocument:
    """A subscriber's Atom feed, with what a conditional GET is answered from."""

    body: bytes
    etag: str  # the body's hash: it changes whenever anything in the feed does
    updated: datetime  # the latest edition's send time (Last-Modified), or when they subscribed


def feed(db: Database, settings: Settings, subscriber_id: int, limit: int = FEED_EDITIONS,
         self_url: str | None = None) -> FeedDocument | None:
    """The papers of a subscriber's latest sent editions as an Atom feed; None once the subscriber is
    gone or unsubscribed (the feed ends with them). `self_url`: the feed's link as the reader asked
    for it (default: a new one). Nothing in it is signed anew per request, so the same editions give
    the same bytes, and the same ETag, at every poll."""
    with db.session() as s:
        sub = subscriber_store.by_id(s, subscriber_id)
    if sub is None or sub.status == SubscriberStatus.UNSUBSCRIBED:
        return None
    editions = [e for e in ledger.recent(db, subscriber_id, limit, status=DeliveryStatus.SENT) if e.sent_at]
    with db.session() as s:
        papers = paper_store.by_ids(s, sorted({p.paper_id for e in editions for p in (*e.picks, *e.trending)}))
    base = settings.web.base_url
    items = [(e.sent_at, [(papers[p.paper_id], p, kind) for kind, picks in (("pick", e.picks), ("trending", e.trending))
                          for p in picks if p.paper_id in papers]) for e in editions]
    links = links_for(settings)
    updated = max((e.sent_at for e in editions), default=sub.created_at or utcnow())
    content = atom.FeedContent(
        id=atom.feed_id(base, subscriber_id, settings.secret()), title=f"{settings.digest.site_name}: your papers",
        self_url=self_url or links.feed(subscriber_id), site_url=f"{base}/",
        author=settings.digest.site_name, updated=updated,
        entries=atom.entries_of(items, base, settings.digest.excerpt_chars))
    body = atom.render_atom(content)
    return FeedDocument(body=body, etag=atom.etag_of(body), updated=updated)


def archive_html(db: Database, settings: Settings, subscriber_id: int, delivery_id: int) -> str | None:
    """A sent edition rebuilt as its email HTML ("view in browser"); None if it is not theirs."""
    edition = ledger.edition_of(db, subscriber_id, delivery_id)
    if edition is None:
        return None
    with db.session() as s:
        sub = subscriber_store.by_id(s, subscriber_id)
        papers = paper_store.by_ids(s, sorted({p.paper_id for p in (*edition.picks, *edition.trending)}))
    if sub is None:
        return None
    return render(settings, links_for(settings), default_renderer(), sub, edition, papers).html


# ------------------------------------------------------------------------------ status, housekeeping


def status(db: Database, settings: Settings) -> dict:
    """What `digest status` shows: counts, last fetch per source, last edition, recent failures, jobs."""
    with db.session() as s:
        counts = {"papers": paper_store.count(s), "subscribers": subscriber_store.count_by_status(s)}
    states = ingest_stage.source_states(db)
    ledger_view = ledger.summary(db)
    return {
        "database": db.engine.url.render_as_string(hide_password=True),
        **counts,
        "deliveries": ledger_view["deliveries"],
        "last_sent_at": ledger_view["last_sent_at"],
        "sources": [{"name": name, "type": cfg.type,
                     "last_success_at": states[name].last_success_at if name in states else None,
                     "last_error": states[name].last_error if name in states else None}
                    for name, cfg in settings.sources.items()],
        "recent_failures": ledger_view["recent_failures"],
    }


def metrics_figures(db: Database, settings: Settings) -> metrics.Figures:
    """What the database holds, for the metrics endpoints' gauges (read at every scrape)."""
    with db.session() as s:
        subs = subscriber_store.count_by_status(s)
    ledger_view = ledger.summary(db, failures=0)
    states = ingest_stage.source_states(db)
    names = [*settings.sources, *sorted(set(states) - set(settings.sources))]
    jobs_now = jobs.status(db, job_ids(settings))
    return metrics.Figures(
        deliveries={str(k): v for k, v in ledger_view["deliveries"].items()}, subscribers=subs,
        last_sent_at=ledger_view["last_sent_at"], states=tuple(str(s) for s in DeliveryStatus),
        source_last_success={n: states[n].last_success_at if n in states else None for n in names},
        source_last_run={n: states[n].last_run_at if n in states else None for n in names},
        source_totals={n: {"fetched": st.total_fetched, "new": st.total_new, "updated": st.total_updated,
                           "skipped": st.total_skipped} for n, st in states.items()},
        job_last_ok={j["job"]: j["last_ok"] for j in jobs_now},
        job_last_finished={j["job"]: j["last_finished_at"] for j in jobs_now})


def metrics_registry(db: Database, settings: Settings):
    """The registry a metrics endpoint serves: this process's counters and the database's gauges."""
    return metrics.registry(lambda: metrics_figures(db, settings))


def metrics_text(registry) -> tuple[bytes, str]:
    """A scrape of `registry` (`metrics_registry`): the Prometheus text format and its content type."""
    return metrics.generate_latest(registry), metrics.CONTENT_TYPE_LATEST


def serve_metrics(db: Database, settings: Settings, host: str, port: int):
    """A metrics server on its own thread (the scheduler's); (server, thread), or None if the port
    cannot be had (one warning)."""
    return metrics.serve(metrics_registry(db, settings), host, port)


DELIVERY_REASONS = planner.REASONS  # the delivery status's reasons, as the preferences page labels them


def subscriber_profile(db: Database, email: str, limit: int = 10) -> dict:
    """What `digest subscribers show` prints: the profile, recent deliveries, feedback, suppression."""
    sub = subscribers.get(db, email)
    recent = ledger.recent(db, sub.id, limit)
    return {**sub.as_dict(), **subscribers.feedback_and_suppression(db, email), "seeds": seeds.seeded(db, sub.id),
            "deliveries": [
        {"period": e.period, "status": str(e.status), "subject": e.subject, "note": e.note,
         "sent_at": e.sent_at.isoformat() if e.sent_at else None, "attempts": e.attempts} for e in recent]}


# ------------------------------------------------------------------------------------------ seeds


def seed_arxiv(db: Database, settings: Settings, email: str, ids: Sequence[str],
               now: datetime | None = None) -> seeds.SeedReport:
    """Seed a subscriber's profile with papers by arXiv id, fetched from the arXiv API (the first
    configured `arxiv` source's base_url and delay, else arXiv's own). Ids arXiv does not know are
    reported; none known at all is an error."""
    wanted = seeds.check_ids(ids)
    subscribers.get(db, email)  # an unknown subscriber is refused before arXiv is asked
    src = next((c for c in settings.sources.values() if isinstance(c, ArxivSource)), ArxivSource(type="arxiv"))
    try:
        with HttpClient(settings.http) as client:
            listings, missing = arxiv_source.fetch_ids(src.base_url, wanted, client, delay=src.delay)
    except SourceError as err:
        raise subscribers.SubscriberError(f"arXiv: {err}") from None
    if not listings:
        raise subscribers.SubscriberError(f"arXiv has none of {', '.join(missing)}; nothing seeded")
    return seeds.seed(db, email, listings, missing=missing, now=now)


def seed_file(db: Database, email: str, name: str, data: bytes, kind: str | None = None,
              now: datetime | None = None) -> seeds.SeedReport:
    """Seed a subscriber's profile with the papers of a BibTeX file or a Zotero CSV export."""
    subscribers.get(db, email)
    found = seeds.read_file(name, data, kind)
    return seeds.seed(db, email, found.listings, skipped=found.skipped, now=now)


def process_bounces(db: Database, settings: Settings, maildirs: Sequence[str] = (),
                    mboxes: Sequence[str] = ()) -> bounces.BounceReport:
    """Read bounce reports and complaints from mailboxes; one summed report."""
    report = bounces.BounceReport()
    for kind, paths in (("maildir", maildirs), ("mbox", mboxes)):
        for path in paths:
            bounces.process_mailbox(db, settings, report=report, **{kind: path})
    return report


def housekeeping(db: Database, settings: Settings, now: datetime | None = None) -> str:
    """Release leases whose sender died, prune the job-run log, forget stale sign-ups; one line."""
    now = now or utcnow()
    leases = ledger.release_expired(db)
    pruned = jobs.prune_runs(db, now - timedelta(days=settings.scheduler.keep_runs_days))
    forgotten = subscribers.prune_pending(db, PENDING_KEEP, now)
    return f"released {leases} expired leases, pruned {pruned} job runs, forgot {forgotten} unconfirmed sign-ups"


TICK, HOUSEKEEPING, INGEST = "tick", "housekeeping", "ingest:"


def job_ids(settings: Settings) -> list[str]:
    """The scheduler's jobs: one ingest per source, the tick, housekeeping."""
    return [INGEST + name for name in settings.sources] + [TICK, HOUSEKEEPING]


def record_job(db: Database, job_id: str, instance: str, started: datetime, finished: datetime, ok: bool,
               summary: str, next_run_at: datetime | None) -> None:
    """One run of a scheduler job: its metrics (first, so a database that went away loses none), its log
    row, and its job's last result and next run."""
    metrics.job_run(job_id, ok, (finished - started).total_seconds())
    jobs.record_run(db, job_id, instance, started, finished, ok, summary)
    jobs.save_state(db, job_id, next_run_at=next_run_at, last_started_at=started, last_finished_at=finished,
                    last_ok=ok, last_summary=summary, instance=instance)


def job_scheduled(db: Database, job_id: str, instance: str, next_run_at: datetime | None) -> None:
    jobs.save_state(db, job_id, next_run_at=next_run_at, instance=instance)


def jobs_stopped(db: Database, instance: str) -> None:
    """A scheduler instance stopped: its jobs have no next run any more."""
    jobs.clear_next_runs(db, instance)


def job_status(db: Database, settings: Settings) -> list[dict]:
    """Next run and last result of each configured job (and of any other job that has a record)."""
    return jobs.status(db, job_ids(settings))

"""Prometheus metrics (prometheus-client): what this process did, and what the database holds.

Two kinds, kept apart on purpose:

- *Process counters* (`MESSAGES_SENT`, `PAPERS`, `JOB_RUNS`...) count what happens in this process,
  where it happens: the sender counts each outcome once the ledger has it, ingest each source run, the
  scheduler each job. They live in prometheus-client's default registry. Sending processes
  (`digest send --workers N`) are separate interpreters: their parent adds up their reports and
  counts them here, so nothing a worker sent is lost from the parent's figures.
- *Database gauges* (`DatabaseCollector`) are read at scrape time from the ledger and the store:
  deliveries by state, subscribers by status, each source's last success and totals, each job's last
  run. They are right in any process (`digest serve` sends nothing, yet shows the ledger).

`registry(figures)` makes the registry an endpoint serves: both kinds together. This module is low:
it imports nothing of the digest; the shells hand it a function that reads the figures.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest, start_http_server

__all__ = ["CONTENT_TYPE_LATEST", "DatabaseCollector", "Figures", "generate_latest", "registry", "serve"]

log = logging.getLogger("digest.metrics")
disable_created_metrics()  # no `*_created` series beside each counter: Prometheus does not need them

# ------------------------------------------------------------------------------ process counters

MESSAGES_SENT = Counter("digest_messages_sent", "Messages the mail server accepted, by transport.",
                        ["transport"])
MESSAGES_FAILED = Counter("digest_messages_failed",
                          "Deliveries failed for good (5xx, retries used up, cannot "
                                                    "render), by transport.", ["transport"])
MESSAGES_RETRIED = Counter("digest_messages_retried", "Deliveries deferred for a retry (4xx), by transport.",
                           ["transport"])
MESSAGES_SUPPRESSED = Counter("digest_messages_suppressed", "Claimed deliveries not sent: the address is "
                                                            "suppressed or unsubscribed, by transport.",
                              ["transport"])
SEND_RATE = Gauge("digest_send_rate_messages_per_second",
                  "Messages sent per second in the last send run that sent "
                                                          "any, by transport.", ["transport"])
SEND_RUN_SECONDS = Histogram("digest_send_run_duration_seconds", "Wall time of send runs, by transport.",
                             ["transport"],
                             buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, float("inf")))
PAPERS = Counter("digest_papers",
                 "Listings handled by ingest, per source and outcome (new, updated, skipped as "
                                  "malformed).", ["source", "outcome"])
SOURCE_RUNS = Counter("digest_source_runs", "Ingest runs per source, by result (ok, error).",
                      ["source", "result"])
JOB_RUNS = Counter("digest_job_runs", "Scheduler job runs, by job and result (ok, failed).",
                   ["job", "result"])
JOB_SECONDS = Histogram("digest_job_duration_seconds", "Wall time of scheduler job runs, by job.", ["job"],
                        buckets=(0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600, float("inf")))

_BY_OUTCOME = {"sent": MESSAGES_SENT, "failed": MESSAGES_FAILED, "retried": MESSAGES_RETRIED,
               "suppressed": MESSAGES_SUPPRESSED}


def count_messages(transport: str, outcome: str, n: int = 1) -> None:
    """`n` messages of `transport` ended in `outcome` (sent, failed, retried, suppressed)."""
    if n:
        _BY_OUTCOME[outcome].labels(transport).inc(n)


def send_run(transport: str, sent: int, seconds: float) -> None:
    """A send run ended: its wall time, and its rate when it sent anything."""
    SEND_RUN_SECONDS.labels(transport).observe(seconds)
    if sent and seconds > 0:
        SEND_RATE.labels(transport).set(sent / seconds)


def source_run(source: str, new: int, updated: int, skipped: int, ok: bool) -> None:
    for outcome, n in (("new", new), ("updated", updated), ("skipped", skipped)):
        PAPERS.labels(source, outcome).inc(n)
    SOURCE_RUNS.labels(source, "ok" if ok else "error").inc()


def job_run(job: str, ok: bool, seconds: float) -> None:
    JOB_RUNS.labels(job, "ok" if ok else "failed").inc()
    JOB_SECONDS.labels(job).observe(seconds)


def transport_name(transport: object) -> str:
    """A transport's label: "smtp" for SmtpTransport, "outbox" for OutboxTransport (a `kind` attribute
    wins)."""
    kind = getattr(transport, "kind", None)
    if isinstance(kind, str) and kind:
        return kind
    name = type(transport).__name__.removesuffix("Transport").lower()
    return name or "custom"


# ------------------------------------------------------------------------------ database gauges


@dataclass
class Figures:
    """What the database holds, read at scrape time (`digest.pipeline.metrics_figures`)."""

    deliveries: dict[str, int] = field(default_factory=dict)  # state -> rows
    subscribers: dict[str, int] = field(default_factory=dict)  # status -> rows
    last_sent_at: datetime | None = None
    source_last_success: dict[str, datetime | None] = field(default_factory=dict)
    source_last_run: dict[str, datetime | None] = field(default_factory=dict)
    source_totals: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> outcome -> papers
    job_last_ok: dict[str, bool | None] = field(default_factory=dict)
    job_last_finished: dict[str, datetime | None] = field(default_factory=dict)
    states: tuple[str, ...] = ()  # every delivery state, so a state with no rows reads 0 (not absent)


class DatabaseCollector:
    """A custom collector: the database's figures as gauges, read on every scrape. A database that
    does not answer gives `digest_database_up 0` and no other gauge, never a failed scrape."""

    def __init__(self, figures: Callable[[], Figures]):
        self.figures = figures

    def describe(self) -> list[Metric]:
        return []  # no fixed description: the registry must not call collect() at registration

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("digest_database_up", "1 if the database answered this scrape.")
        try:
            f = self.figures()
        except Exception as err:  # noqa: BLE001 - a scrape reports the database down, not a 500
            log.warning("metrics: cannot read the database: %s", err)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield _family("digest_deliveries", "Ledger rows by delivery state.", ["state"],
                      {(s,): f.deliveries.get(s, 0) for s in (*f.states, *f.deliveries)})
        yield _family("digest_subscribers", "Subscribers by status.", ["status"],
                      {(s,): n for s, n in f.subscribers.items()})
        yield _family("digest_last_sent_timestamp_seconds", "When the ledger last recorded a sent message.",
                      [],
                      {(): _ts(f.last_sent_at)} if f.last_sent_at else {})
        yield _family("digest_source_last_success_timestamp_seconds", "Each source's last successful run.",
                      ["source"], {(s,): _ts(at) for s, at in f.source_last_success.items() if at})
        yield _family("digest_source_last_run_timestamp_seconds", "Each source's last run, ok or not.",
                      ["source"],
                      {(s,): _ts(at) for s, at in f.source_last_run.items() if at})
        yield _family("digest_source_papers_recorded", "Listings each source has handled in all its runs, by "
                                                       "outcome (from source_state).", ["source", "outcome"],
                      {(s, o): n for s, totals in f.source_totals.items() for o, n in totals.items()})
        yield _family("digest_job_last_run_ok", "1 if the job's last run succeeded, 0 if it failed.", ["job"],
                      {(j,): int(ok) for j, ok in f.job_last_ok.items() if ok is not None})
        yield _family("digest_job_last_finished_timestamp_seconds", "When each job's last run finished.",
                      ["job"],
                      {(j,): _ts(at) for j, at in f.job_last_finished.items() if at})


def _ts(at: datetime) -> float:
    return at.timestamp()


def _family(name: str, doc: str, labels: list[str], values: dict[tuple, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in values.items():
        family.add_metric(list(key), value)
    return family


# ------------------------------------------------------------------------------------ endpoints


class _Process:
    """This process's counters (the default registry, with prometheus-client's process_* and python_*)."""

    def collect(self) -> Iterator[Metric]:
        return REGISTRY.collect()


def registry(figures: Callable[[], Figures] | None = None) -> CollectorRegistry:
    """What one endpoint serves: this process's counters and, given `figures`, the database gauges."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Process())
    if figures is not None:
        reg.register(DatabaseCollector(figures))
    return reg


def serve(reg: CollectorRegistry, host: str, port: int):
    """A metrics server on its own thread (`digest scheduler`); returns (server, thread), or None
    (logged, one line) when the port cannot be had: a scheduler keeps scheduling without it."""
    try:
        server, thread = start_http_server(port, addr=host, registry=reg)
    except OSError as err:
        log.warning("metrics: cannot listen on %s:%d (%s); running without a metrics endpoint", host, port,
                    err.strerror or err)
        return None
    log.info("metrics on http://%s:%d/metrics", host, server.server_port)
    return server, thread

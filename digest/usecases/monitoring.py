"""Prometheus metrics for `digest serve`'s /metrics and the scheduler's metrics server: this process's
counters and the database's gauges, read at every scrape."""

from __future__ import annotations

from digest import metrics
from digest.config import Settings
from digest.delivery import ledger
from digest.records import DeliveryStatus
from digest.sources import ingest as ingest_stage
from digest.store import jobs
from digest.store import subscribers as subscriber_store
from digest.store.db import Database
from digest.usecases.jobs import job_status


def metrics_figures(db: Database, settings: Settings) -> metrics.Figures:
    """What the database holds, for the metrics endpoints' gauges (read at every scrape)."""
    with db.session() as s:
        subs = subscriber_store.count_by_status(s)
    ledger_view = ledger.summary(db, failures=0)
    states = ingest_stage.source_states(db)
    names = [*settings.sources, *sorted(set(states) - set(settings.sources))]
    jobs_now = job_status(jobs.states(db), settings)
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

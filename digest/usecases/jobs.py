"""The scheduler's jobs as the database keeps them: which there are, each run's outcome, the next runs."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from digest.config import Settings
from digest.lazy import lazy
from digest.records import JOB_STATE

if TYPE_CHECKING:
    from digest.store.db import Database

metrics = lazy("digest.metrics")  # prometheus_client: for the jobs that run, not `digest status`
jobs = lazy("digest.store.jobs")  # SQLAlchemy: `digest status` may read through digest.store.quick_read

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


def job_status(states: dict[str, dict], settings: Settings) -> list[dict]:
    """Next run and last result of each configured job (and of any other job that has a record), from
    the jobs' stored states (`store.jobs.states`)."""
    ids = job_ids(settings)
    empty = dict.fromkeys(JOB_STATE)
    return [{"job": job_id, **states.get(job_id, empty)}
            for job_id in [*ids, *sorted(set(states) - set(ids))]]

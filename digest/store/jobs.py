"""The scheduler's records: one row per job (next run, last result: what `digest status` shows) and
the job-run log (one row per run, pruned by housekeeping)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from digest.records import JOB_STATE
from digest.store.db import Database
from digest.store.models import JobRun, JobState


def save_state(db: Database, job_id: str, **values) -> None:
    """Insert or update a job's row (portable; a second scheduler may insert the row first)."""
    for _ in range(2):
        with db.session() as s:
            if s.execute(update(JobState).where(JobState.job_id == job_id).values(**values)).rowcount:
                return
        try:
            with db.session() as s:
                s.add(JobState(job_id=job_id, **values))
            return
        except IntegrityError:
            continue


def record_run(db: Database, job_id: str, instance: str, started: datetime, finished: datetime, ok: bool,
               summary: str) -> None:
    with db.session() as s:
        s.add(JobRun(job_id=job_id, instance=instance, started_at=started, finished_at=finished, ok=ok,
                     summary=summary))


def clear_next_runs(db: Database, instance: str) -> None:
    with db.session() as s:
        s.execute(update(JobState).where(JobState.instance == instance).values(next_run_at=None))


def prune_runs(db: Database, before: datetime) -> int:
    with db.session() as s:
        return s.execute(delete(JobRun).where(JobRun.started_at < before)).rowcount


def states(db: Database) -> dict[str, dict]:
    """Each job's stored state (next run, last result), by job id."""
    with db.session() as s:
        return {r.job_id: {k: getattr(r, k) for k in JOB_STATE} for r in s.scalars(select(JobState))}

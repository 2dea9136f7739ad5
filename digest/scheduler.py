"""`digest scheduler`: APScheduler around the pipeline functions, in the foreground.

Jobs:
- `ingest:NAME` for each configured source, on the source's `schedule` (cron);
- `tick`, every `scheduler.tick_seconds`: plan the editions that are due (`plan(due_only=True)`), send;
- `housekeeping`, on `scheduler.housekeeping` (cron): release expired leases, prune the job-run log.

Each run logs one summary line and records its outcome in `scheduler_jobs` (last result, next run:
what `digest status` shows) and `job_runs` (history). SIGTERM or SIGINT: no new job starts, the message
in flight is finished, claimed but unsent deliveries are handed back, and the process exits 0. Every job
is idempotent against the ledger, so two schedulers, or a scheduler and `digest send`, never
double-send; only the job store ("database") must not be shared by two running schedulers.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from digest.config import ConfigError, Settings
from digest.delivery.sender import SendReport, release_expired, send, worker_name
from digest.mail.transport import Transport, TransportUnavailable, pool_from_settings
from digest.pipeline import pending_count
from digest.planning import planner
from digest.store.db import Database
from digest.store.models import JobRun, JobState, utcnow
from digest.subscriptions import subscribers

log = logging.getLogger("digest.scheduler")

TICK, HOUSEKEEPING, INGEST = "tick", "housekeeping", "ingest:"
PENDING_KEEP = timedelta(days=7)  # unconfirmed sign-ups are forgotten after this (confirm links last 3 days)


def job_ids(settings: Settings) -> list[str]:
    return [INGEST + name for name in settings.sources] + [TICK, HOUSEKEEPING]


def job_status(db: Database, settings: Settings) -> list[dict]:
    """Next run and last result of each configured job (and of any other job that has a record)."""
    with db.session() as s:
        rows = {r.job_id: r for r in s.scalars(select(JobState))}
    out = []
    for job_id in job_ids(settings) + sorted(set(rows) - set(job_ids(settings))):
        r = rows.get(job_id)
        out.append({
            "job": job_id,
            "next_run_at": r.next_run_at if r else None,
            "last_started_at": r.last_started_at if r else None,
            "last_finished_at": r.last_finished_at if r else None,
            "last_ok": r.last_ok if r else None,
            "last_summary": r.last_summary if r else None,
            "instance": r.instance if r else None,
        })
    return out


def _save_state(db: Database, job_id: str, **values) -> None:
    for _ in range(2):  # insert-or-update, portable; a second scheduler may insert the row first
        with db.session() as s:
            if s.execute(update(JobState).where(JobState.job_id == job_id).values(**values)).rowcount:
                return
        try:
            with db.session() as s:
                s.add(JobState(job_id=job_id, **values))
            return
        except IntegrityError:
            continue


# ------------------------------------------------------------------------------------------ triggers


def _cron(expr: str, tz: ZoneInfo, key: str) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(expr, timezone=tz)
    except ValueError as err:
        raise ConfigError(f"{key}: not a valid cron schedule {expr!r} ({err})") from None


def triggers(settings: Settings) -> dict[str, BaseTrigger]:
    """Every job and its trigger; a bad cron string is a ConfigError naming its key."""
    cfg = settings.scheduler
    tz = ZoneInfo(cfg.timezone)
    out: dict[str, BaseTrigger] = {
        INGEST + name: _cron(src.schedule, tz, f"sources.{name}.schedule") for name, src in settings.sources.items()
    }
    out[TICK] = IntervalTrigger(seconds=cfg.tick_seconds, timezone=tz)
    out[HOUSEKEEPING] = _cron(cfg.housekeeping, tz, "scheduler.housekeeping")
    return out


def _same(a: BaseTrigger, b: BaseTrigger) -> bool:
    return str(a) == str(b) and str(getattr(a, "timezone", "")) == str(getattr(b, "timezone", ""))


# --------------------------------------------------------------------------------------- graceful stop

STOPPING = "the scheduler is stopping"


class StopAware:
    """A transport that refuses to start a new message once `stop` is set.

    It raises TransportUnavailable, which tells `send()` that nothing was sent and the run must stop:
    the deliveries it claimed are handed back. A message already in flight finishes normally.
    """

    def __init__(self, inner: Transport, stop: threading.Event):
        self.inner, self.stop = inner, stop

    def open(self) -> None:
        self.inner.open()

    def send(self, data: bytes, sender: str, recipient: str) -> None:
        if self.stop.is_set():
            raise TransportUnavailable(STOPPING)
        self.inner.send(data, sender, recipient)

    def close(self) -> None:
        self.inner.close()


# -------------------------------------------------------------------------------------------- runner

_current: Runner | None = None  # the runner of this process, for `run_job`


def run_job(job_id: str) -> None:
    """What APScheduler calls; a module-level name, so the database job store can refer to it."""
    if _current is None:
        raise RuntimeError(f"job {job_id}: no scheduler is running in this process")
    _current.run(job_id)


class Runner:
    """One scheduler process: its settings, database, APScheduler instance and stop signal."""

    def __init__(self, settings: Settings, db: Database | None = None):
        self.settings = settings
        self.db = db or Database(settings.database.url)
        self.stop = threading.Event()
        self.instance = worker_name()
        self.scheduler: BackgroundScheduler | None = None
        self.triggers: dict[str, BaseTrigger] = {}

    # ---- jobs

    def ingest(self, source: str) -> tuple[bool, str]:
        from digest.sources.ingest import ingest

        report = ingest(self.db, self.settings, source=source)
        r = report.sources[0]
        text = f"{r.fetched} fetched, {r.new} new, {r.updated} updated, {r.skipped} skipped"
        return r.error is None, text + (f"; error: {r.error}" if r.error else "")

    def tick(self) -> tuple[bool, str]:
        plan = planner.plan(self.db, self.settings, due_only=True)
        if self.stop.is_set():
            return True, f"{plan.summary()}; stopping, nothing sent"
        report = SendReport()
        if pending_count(self.db):
            pool = [StopAware(t, self.stop) for t in pool_from_settings(self.settings)]
            report = send(self.db, self.settings, transport=pool)  # gives back what it holds
        errors = [e for e in report.errors if e != STOPPING]
        text = (f"{plan.summary()}; sent {report.sent}, retried {report.retried}, failed {report.failed}, "
                f"suppressed {report.suppressed}")
        if len(errors) < len(report.errors):
            text += "; stopped, the rest handed back"
        if errors:
            text += "; error: " + "; ".join(errors)
        return not errors, text

    def housekeeping(self) -> tuple[bool, str]:
        now = utcnow()
        keep = timedelta(days=self.settings.scheduler.keep_runs_days)
        leases = release_expired(self.db)
        with self.db.session() as s:
            pruned = s.execute(delete(JobRun).where(JobRun.started_at < now - keep)).rowcount
        forgotten = subscribers.prune_pending(self.db, PENDING_KEEP, now)
        return True, (f"released {leases} expired leases, pruned {pruned} job runs, "
                      f"forgot {forgotten} unconfirmed sign-ups")

    def _work(self, job_id: str) -> Callable[[], tuple[bool, str]]:
        if job_id.startswith(INGEST):
            return lambda: self.ingest(job_id.removeprefix(INGEST))
        return {TICK: self.tick, HOUSEKEEPING: self.housekeeping}[job_id]

    def run(self, job_id: str) -> tuple[bool, str]:
        """Run one job: one summary line in the log, its outcome in the database. Never raises."""
        started, t0 = utcnow(), time.monotonic()
        try:
            ok, text = self._work(job_id)()
        except Exception as err:
            log.exception("job %s crashed", job_id)
            ok, text = False, f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:300]}"
        log.log(logging.INFO if ok else logging.WARNING, "job %s %s in %.1fs: %s", job_id,
                "ok" if ok else "FAILED", time.monotonic() - t0, text)
        try:
            finished = utcnow()
            with self.db.session() as s:
                s.add(JobRun(job_id=job_id, instance=self.instance, started_at=started, finished_at=finished,
                             ok=ok, summary=text))
            _save_state(self.db, job_id, next_run_at=self.upcoming(job_id), last_started_at=started,
                        last_finished_at=finished, last_ok=ok, last_summary=text, instance=self.instance)
        except Exception:  # the database is gone: the log line above still tells
            log.exception("job %s: could not record the run", job_id)
        return ok, text

    # ---- scheduling

    def upcoming(self, job_id: str) -> datetime | None:
        """The job's next run by its trigger. Not `scheduler.get_job()`: a job must not take the
        scheduler's job store lock, which `shutdown()` holds while it waits for running jobs."""
        trigger = self.triggers.get(job_id)
        if trigger is None or self.stop.is_set():
            return None
        return trigger.get_next_fire_time(None, datetime.now(UTC))

    def start(self) -> None:
        """Build the jobs and start them (in background threads). Raises ConfigError on a bad cron."""
        global _current
        cfg = self.settings.scheduler
        wanted = self.triggers = triggers(self.settings)
        store = SQLAlchemyJobStore(engine=self.db.engine) if cfg.job_store == "database" else MemoryJobStore()
        sched = BackgroundScheduler(
            jobstores={"default": store}, executors={"default": ThreadPoolExecutor(cfg.workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": cfg.misfire_grace_seconds},
            timezone=ZoneInfo(cfg.timezone),
        )
        self.scheduler, _current = sched, self
        sched.start(paused=True)
        for job in sched.get_jobs():  # a stored job of a source that is no longer configured
            if job.id not in wanted:
                job.remove()
        now = datetime.now(UTC)
        for job_id, trigger in wanted.items():
            first = now if job_id.startswith(INGEST) and cfg.ingest_on_start else None  # the tick: in tick_seconds
            stored = sched.get_job(job_id)
            if stored is not None and _same(stored.trigger, trigger):  # keep its stored next run time
                if first is not None:
                    stored.modify(next_run_time=first)
                continue
            extra = {"next_run_time": first} if first is not None else {}
            sched.add_job(f"{__name__}:run_job", trigger, args=[job_id], id=job_id, name=job_id,
                          replace_existing=True, **extra)
        for job in sched.get_jobs():
            _save_state(self.db, job.id, next_run_at=job.next_run_time, instance=self.instance)
        sched.resume()
        log.info("scheduler %s started: %s; tick every %gs; job store %s", self.instance, ", ".join(wanted),
                 cfg.tick_seconds, cfg.job_store)

    def shutdown(self) -> None:
        """Stop: no new runs, wait for the running ones (they see `stop`), clear our next-run times."""
        global _current
        self.stop.set()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        try:
            with self.db.session() as s:
                s.execute(update(JobState).where(JobState.instance == self.instance).values(next_run_at=None))
        except Exception:
            log.exception("could not clear the next run times")
        if _current is self:
            _current = None
        log.info("scheduler %s stopped cleanly", self.instance)


class _NotBusy(logging.Filter):
    """A tick that outlasts its interval makes APScheduler skip the next one (coalesced): not a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in record.getMessage()


def serve(settings: Settings, db: Database | None = None) -> None:
    """Run in the foreground until SIGTERM or SIGINT; a second signal stops at once."""
    triggers(settings)  # a bad cron string is refused before anything starts
    logging.getLogger("apscheduler.scheduler").addFilter(_NotBusy())
    runner = Runner(settings, db)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("%s: finishing the work in flight, then stopping (again to force)", signal.Signals(signum).name)
        runner.stop.set()
        signal.signal(signum, signal.SIG_DFL)

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        runner.start()
        while not runner.stop.wait(0.5):
            pass
    finally:
        runner.shutdown()
        for sig, handler in old.items():
            signal.signal(sig, handler)

"""`digest scheduler`: APScheduler around the use cases, in the foreground.

Jobs:
- `ingest:NAME` for each configured source, on the source's `schedule` (cron);
- `tick`, every `scheduler.tick_seconds`: plan the editions that are due (`plan(due_only=True)`), send;
- `housekeeping`, on `scheduler.housekeeping` (cron): release expired leases, prune the job-run log.

Each run logs one summary line and records its outcome in `scheduler_jobs` (last result, next run:
what `digest status` shows) and `job_runs` (history). SIGTERM or SIGINT: no new job starts, planning
stops between batches, the message in flight is finished, claimed but unsent deliveries are handed back,
and the process exits 0; a second signal hands back what it holds and ends it at once. Every job
is idempotent against the ledger, so two schedulers, or a scheduler and `digest send`, never
double-send; only the job store ("database") must not be shared by two running schedulers.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from digest.config import ConfigError, Settings
from digest.records import utcnow
from digest.usecases import housekeeping, ingesting, jobs, monitoring, sending, stopping
from digest.usecases.jobs import HOUSEKEEPING, INGEST, TICK
from digest.usecases.sending import STOPPING, worker_name
from digest.usecases.setup import Database

log = logging.getLogger("digest.scheduler")

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
        INGEST + name: _cron(src.schedule, tz, f"sources.{name}.schedule") for name,
        src in settings.sources.items()
    }
    out[TICK] = IntervalTrigger(seconds=cfg.tick_seconds, timezone=tz)
    out[HOUSEKEEPING] = _cron(cfg.housekeeping, tz, "scheduler.housekeeping")
    return out


def _same(a: BaseTrigger, b: BaseTrigger) -> bool:
    return str(a) == str(b) and str(getattr(a, "timezone", "")) == str(getattr(b, "timezone", ""))


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
        self.metrics_server = None  # (server, thread) while it serves /metrics

    def serve_metrics(self, host: str, port: int) -> int | None:
        """Serve this process's counters and the database's gauges on host:port (0: any free port);
        returns the port, or None if it could not listen (logged: the scheduler runs on without)."""
        got = monitoring.serve_metrics(self.db, self.settings, host, port)
        if got is None:
            return None
        self.metrics_server = got
        return got[0].server_port

    # ---- jobs

    def ingest(self, source: str) -> tuple[bool, str]:
        report = ingesting.ingest(self.db, self.settings, source=source, stop=self.stop)
        r = report.sources[0]
        text = f"{r.fetched} fetched, {r.new} new, {r.updated} updated, {r.skipped} skipped"
        if r.stopped:
            text += "; stopping: what was read is stored, the next run reads the rest"
        return r.error is None, text + (f"; error: {r.error}" if r.error else "")

    def tick(self) -> tuple[bool, str]:
        r = sending.run_pass(self.db, self.settings, due_only=True, stop=self.stop)
        if r.stopped:
            return True, f"{r.plan.summary()}; stopping, nothing sent"
        errors = [e for e in r.send.errors if e != STOPPING]
        text = (f"{r.plan.summary()}; sent {r.send.sent}, retried {r.send.retried}, failed {r.send.failed}, "
                f"suppressed {r.send.suppressed}")
        if len(errors) < len(r.send.errors):
            text += "; stopped, the rest handed back"
        if errors:
            text += "; error: " + "; ".join(errors)
        return not errors, text

    def housekeeping(self) -> tuple[bool, str]:
        return True, housekeeping.housekeeping(self.db, self.settings)

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
            jobs.record_job(self.db, job_id, self.instance, started, utcnow(), ok, text,
                            self.upcoming(job_id))
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
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": cfg.misfire_grace_seconds},
            timezone=ZoneInfo(cfg.timezone),
        )
        self.scheduler, _current = sched, self
        sched.start(paused=True)
        for job in sched.get_jobs():  # a stored job of a source that is no longer configured
            if job.id not in wanted:
                job.remove()
        now = datetime.now(UTC)
        for job_id, trigger in wanted.items():
            # the tick: in tick_seconds
            first = now if job_id.startswith(INGEST) and cfg.ingest_on_start else None
            stored = sched.get_job(job_id)
            if stored is not None and _same(stored.trigger, trigger):  # keep its stored next run time
                if first is not None:
                    stored.modify(next_run_time=first)
                continue
            extra = {"next_run_time": first} if first is not None else {}
            sched.add_job(f"{__name__}:run_job", trigger, args=[job_id], id=job_id, name=job_id,
                          replace_existing=True, **extra)
        for job in sched.get_jobs():
            jobs.job_scheduled(self.db, job.id, self.instance, job.next_run_time)
        sched.resume()
        log.info("scheduler %s started: %s; tick every %gs; job store %s", self.instance, ", ".join(wanted),
                 cfg.tick_seconds, cfg.job_store)
        for warning in self.settings.warnings():
            log.warning("%s", warning)

    def shutdown(self) -> None:
        """Stop: no new runs, wait for the running ones (they see `stop`), clear our next-run times."""
        global _current
        self.stop.set()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        try:
            jobs.jobs_stopped(self.db, self.instance)
        except Exception:
            log.exception("could not clear the next run times")
        if self.metrics_server is not None:
            server, thread = self.metrics_server
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            self.metrics_server = None
        if _current is self:
            _current = None
        log.info("scheduler %s stopped cleanly", self.instance)


class _NotBusy(logging.Filter):
    """A tick that outlasts its interval makes APScheduler skip the next one (coalesced): not a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in record.getMessage()


def serve(settings: Settings, db: Database | None = None, metrics_port: int | None = None) -> None:
    """Run in the foreground until SIGTERM or SIGINT; a second signal stops at once. Serves /metrics on
    `metrics.scheduler_host`:`metrics_port` (default `metrics.scheduler_port`; 0 or metrics off: none)."""
    triggers(settings)  # a bad cron string is refused before anything starts
    logging.getLogger("apscheduler.scheduler").addFilter(_NotBusy())
    runner = Runner(settings, db)
    port = settings.metrics.scheduler_port if metrics_port is None else metrics_port
    if settings.metrics.enabled and port:
        runner.serve_metrics(settings.metrics.scheduler_host, port)

    def on_signal(signum: int, _frame: object) -> None:
        if runner.stop.is_set():  # again: what it holds is handed back, and it ends at once
            stopping.quit_now(signum)
        log.info("%s: finishing the work in flight, then stopping (again to force)",
                 signal.Signals(signum).name)
        runner.stop.set()

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        runner.start()
        while not runner.stop.wait(0.5):
            pass
    finally:
        runner.shutdown()
        for sig, handler in old.items():
            signal.signal(sig, handler)

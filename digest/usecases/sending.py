"""`digest send`, `digest run`, the scheduler's tick and the demo: one pass that ingests (if asked),
plans, then sends what is due."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from digest.config import Settings
from digest.delivery import ledger
from digest.delivery.loop import worker_name
from digest.delivery.pool import STOPPING
from digest.delivery.processes import SendingProcesses
from digest.delivery.recording import SendReport
from digest.delivery.sender import send
from digest.mail.transport import Transport
from digest.planning.planner import PlanReport
from digest.records import utcnow
from digest.sources.ingest import IngestReport
from digest.store.db import Database
from digest.throughput import few_collections
from digest.usecases.ingesting import ingest
from digest.usecases.planning import plan

log = logging.getLogger("digest.pipeline")

__all__ = ["STOPPING", "PassReport", "pending_count", "run_pass", "send", "worker_name"]


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
        nothing sent, the papers roll over), given back (unspent, due again), errors."""
        s = self.send
        return {"sent": s.sent, "retried": s.retried, "failed": s.failed,
                "suppressed": s.suppressed + self.plan.suppressed, "skipped": self.plan.nothing_new,
                "quiet": self.plan.quiet, "given_back": s.given_back, "errors": s.errors,
                "planned": self.plan.planned, "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "by_transport": s.by_transport}


@few_collections()  # the whole pass: planning and sending make millions of small objects
def run_pass(db: Database, settings: Settings, *, ingest_first: bool = False, email: str | None = None,
             due_only: bool = False, dry_run: bool = False, now: datetime | None = None,
             transport: Transport | Sequence[Transport] | None = None, stop: threading.Event | None = None,
             progress: Callable[[int], None] | None = None,
             on_planned: Callable[[int], None] | None = None, workers: int | None = None,
             planning: Callable[[int], None] | None = None) -> PassReport:
    """Ingest (if `ingest_first`), plan, then send what is due: the one pass behind `digest send`,
    `digest run`, the scheduler's tick and the demo. `on_planned(n)` is told how many deliveries the
    send will take before it starts (a progress bar's length); `stop` ends sending early;
    `planning(n)`: n more subscribers planned.

    Several sending processes start first and warm up (imports, templates) while this one plans; not
    for the scheduler's tick (`due_only`), which mostly finds nothing due."""
    n = workers or settings.mail.workers
    if n > 1 and transport is None and not dry_run and not due_only:
        with SendingProcesses(db, settings, n, now=now, email=email) as ahead:
            return _pass(db, settings, ingest_first, email, due_only, dry_run, now, stop, on_planned,
                         lambda: ahead.run(progress, stop), planning)
    return _pass(db, settings, ingest_first, email, due_only, dry_run, now, stop, on_planned,
                 lambda: send(db, settings, now=now, email=email, transport=transport, stop=stop,
                              progress=progress, workers=workers), planning)


def _pass(db: Database, settings: Settings, ingest_first: bool, email: str | None, due_only: bool,
          dry_run: bool,
          now: datetime | None, stop: threading.Event | None, on_planned: Callable[[int], None] | None,
          send_all: Callable[[], SendReport], planning: Callable[[int], None] | None = None) -> PassReport:
    report = PassReport()
    stopped = (lambda: stop.is_set()) if stop is not None else (lambda: False)
    clock = time.perf_counter()
    if ingest_first:
        report.ingest = ingest(db, settings, now=now, stop=stop)
        report.seconds["ingest"] = time.perf_counter() - clock
    if stopped():
        report.stopped = True
        return report
    clock = time.perf_counter()
    report.plan = plan(db, settings, now=now, email=email, dry_run=dry_run, due_only=due_only, stop=stop,
                       progress=planning)
    report.seconds["plan"] = time.perf_counter() - clock
    if dry_run:
        return report
    if stopped():
        report.stopped = True
        return report
    pending = pending_count(db, email, now)
    log.info("sending %d due deliveries", pending)
    if on_planned is not None:
        on_planned(pending)
    if pending:
        clock = time.perf_counter()
        report.send = send_all()
        report.seconds["send"] = time.perf_counter() - clock
        s = report.send
        if s.failed and not s.sent and not stopped():  # a broken cron job must not look healthy
            s.errors.append(f"every delivery tried failed ({s.failed}): `digest status` shows why")
    return report


def destination(settings: Settings) -> str:
    """Where the mail of a send goes, for the admin: the SMTP relay's host:port, or the outbox folder."""
    mail = settings.mail
    if mail.transport == "smtp":
        return f"the SMTP relay {mail.smtp.host}:{mail.smtp.port}"
    return f"the outbox {Path(mail.outbox_dir).resolve()}"

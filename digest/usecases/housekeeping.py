"""Keeping the house: leases of senders that died, the job-run log, stale sign-ups, bounce reports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from digest.config import Settings
from digest.delivery import bounces, ledger
from digest.records import utcnow
from digest.store import jobs
from digest.store.db import Database
from digest.subscriptions import subscribers

PENDING_KEEP = timedelta(days=7)  # unconfirmed sign-ups are forgotten after this (confirm links last 3 days)


def housekeeping(db: Database, settings: Settings, now: datetime | None = None) -> str:
    """Release leases whose sender died, prune the job-run log, forget stale sign-ups; one line."""
    now = now or utcnow()
    leases = ledger.release_expired(db)
    pruned = jobs.prune_runs(db, now - timedelta(days=settings.scheduler.keep_runs_days))
    forgotten = subscribers.prune_pending(db, PENDING_KEEP, now)
    return (f"released {leases} expired leases, pruned {pruned} job runs, forgot {forgotten} unconfirmed "
            "sign-ups")


def process_bounces(db: Database, settings: Settings, maildirs: Sequence[str] = (),
                    mboxes: Sequence[str] = ()) -> bounces.BounceReport:
    """Read bounce reports and complaints from mailboxes; one summed report."""
    report = bounces.BounceReport()
    for kind, paths in (("maildir", maildirs), ("mbox", mboxes)):
        for path in paths:
            bounces.process_mailbox(db, settings, report=report, **{kind: path})
    return report

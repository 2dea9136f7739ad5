"""What an admin looks at: `digest status` and `digest subscribers show`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from digest.config import Settings
from digest.lazy import lazy
from digest.usecases import recovery
from digest.usecases.jobs import job_status

if TYPE_CHECKING:
    from digest.store.db import Database
    from digest.usecases.reads import Reads

# `subscribers show` only: `digest status` starts without the channels and the renderer they load, and
# may read through digest.store.quick_read, without the ledger's SQLAlchemy
subscribers = lazy("digest.subscriptions.subscribers")
seeds = lazy("digest.subscriptions.seeds")
ledger = lazy("digest.delivery.ledger")


def status(reads: Reads, settings: Settings) -> dict:
    """What `digest status` shows: counts, last fetch per source, last edition, recent failures, jobs."""
    states = reads.source_states()
    ledger_view = reads.ledger_summary()
    return {
        "database": reads.where,
        "papers": reads.paper_count(),
        "subscribers": reads.subscriber_counts(),
        "deliveries": ledger_view["deliveries"],
        "last_sent_at": ledger_view["last_sent_at"],
        "sources": [{"name": name, "type": cfg.type,
                     "last_success_at": states[name].last_success_at if name in states else None,
                     "last_error": states[name].last_error if name in states else None}
                    for name, cfg in settings.sources.items()],
        "recent_failures": ledger_view["recent_failures"],
        "leases": [h.as_dict() for h in recovery.holders_of(reads.lease_holders())],
        "suppressed": reads.suppressed_count(),
        "jobs": job_status(reads.job_states(), settings),
    }


def subscriber_profile(db: Database, email: str, limit: int = 10) -> dict:
    """What `digest subscribers show` prints: the profile, recent deliveries, feedback, suppression."""
    sub = subscribers.get(db, email)
    recent = ledger.recent(db, sub.id, limit)
    return {**sub.as_dict(), **subscribers.feedback_and_suppression(db, email),
            "seeds": seeds.seeded(db, sub.id),
            "deliveries": [
        {"period": e.period, "status": str(e.status), "subject": e.subject, "note": e.note,
         "sent_at": e.sent_at.isoformat() if e.sent_at else None, "attempts": e.attempts} for e in recent]}


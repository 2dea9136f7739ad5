"""What an admin looks at: `digest status` and `digest subscribers show`."""

from __future__ import annotations

from digest.config import Settings
from digest.delivery import ledger
from digest.lazy import lazy
from digest.sources import ingest as ingest_stage
from digest.store import papers as paper_store
from digest.store import subscribers as subscriber_store
from digest.store.db import Database
from digest.usecases import recovery
from digest.usecases.jobs import job_status

# `subscribers show` only: `digest status` starts without the channels and the renderer they load
subscribers = lazy("digest.subscriptions.subscribers")
seeds = lazy("digest.subscriptions.seeds")


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
        "leases": [h.as_dict() for h in recovery.holders(db)],
        "suppressed": recovery.suppressed_count(db),
        "jobs": job_status(db, settings),
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


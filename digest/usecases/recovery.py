"""What an admin reaches for when something went wrong: see and lift suppressions, make failed or
waiting deliveries due now, hand back the leases of a sender that is gone, see who holds leases.

A lease's holder is a worker name, "HOST:PID:TAG" (digest.delivery.loop.worker_name): on this host
a holder whose process is gone can be released at once; a holder whose process still runs (or that
runs on another host) is refused until its lease runs out, so a live sender is never doubled.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from digest.lazy import lazy
from digest.planning import planner
from digest.records import DeliveryStatus, utcnow

if TYPE_CHECKING:
    from digest.store.db import Database

bounces = lazy("digest.delivery.bounces")  # the mailbox readers: for suppressions, not `digest status`
# the ledger and the store (SQLAlchemy) load on first use: `digest status` may read through
# digest.store.quick_read and needs only `holders_of`
ledger = lazy("digest.delivery.ledger")
subscriber_store = lazy("digest.store.subscribers")

S = DeliveryStatus


class RecoveryError(ValueError):
    """What the admin asked cannot be done as asked; one line that says why."""


# ------------------------------------------------------------------------------------ suppressions


@dataclass(frozen=True)
class Suppression:
    email: str
    reason: str  # unsubscribed | hard_bounce | soft_bounce | complaint | manual
    since: datetime
    detail: str | None  # what was stored with it (the reply's status and text, "one-click", "import")
    cause: str  # the report or reply that caused it, in one line

    def as_dict(self) -> dict:
        return {"email": self.email, "reason": self.reason, "since": self.since.isoformat(),
                "detail": self.detail, "cause": self.cause}


def _cause(reason: str, detail: str | None, bounce: dict | None) -> str:
    if bounce is None or reason == "unsubscribed":
        return detail or reason
    what = {"smtp": "the relay's reply while sending", "dsn": "a bounce report",
            "arf": "a complaint report"}.get(bounce["source"], bounce["source"])
    about = f" about {bounce['message_id']} ({bounce['period']})" if bounce["message_id"] else ""
    said = " ".join(x for x in (bounce["status"], bounce["detail"]) if x)
    return f"{what}{about}, {bounce['at']:%Y-%m-%d %H:%M} UTC: {said}"[:400]


def suppressions(db: Database, email: str | None = None) -> list[Suppression]:
    """Every suppressed address (or only `email`), with its reason and the report that caused it."""
    with db.session() as s:
        rows = subscriber_store.suppression_rows(s, email)
        found = bounces.causes(s, [r[0] for r in rows])
    return [Suppression(addr, reason, since, detail, _cause(reason, detail, found.get(addr)))
            for addr, reason, detail, since in rows]


def suppressed_count(db: Database) -> int:
    with db.session() as s:
        return subscriber_store.count_suppressed(s)


def suppressed_among(db: Database, emails: list[str]) -> dict[str, str]:
    """The suppressed addresses among `emails`, with their reasons (`subscribers list`)."""
    with db.session() as s:
        return subscriber_store.suppressed(s, emails)


def lift(db: Database, email: str) -> Suppression:
    """Mail this address again: its suppression goes, and the bounces behind it no longer count. An
    unsubscribe is the subscriber's own choice: only their new, confirmed subscription lifts it."""
    email = email.strip().lower()
    with db.session() as s:
        rows = subscriber_store.suppression_rows(s, email)
        if not rows:
            raise RecoveryError(f"{email} is not suppressed")
        addr, reason, detail, since = rows[0]
        if reason == "unsubscribed":
            raise RecoveryError(f"{email} unsubscribed: only their own new subscription (confirmed by "
                                "them) can lift that")
        cause = _cause(reason, detail, bounces.causes(s, [addr]).get(addr))
        subscriber_store.unsuppress(s, addr)
        bounces.forgive(s, addr)
    return Suppression(addr, reason, since, detail, cause)


# -------------------------------------------------------------------------------------- deliveries


@dataclass
class Retried:
    failed: int = 0  # failed deliveries of the current period, due again now
    waiting: int = 0  # retries that were waiting for their time, due now
    older: int = 0  # failed or waiting deliveries of past periods, left alone (the next edition has them)

    @property
    def due(self) -> int:
        return self.failed + self.waiting


def retry(db: Database, email: str | None = None, now: datetime | None = None) -> Retried:
    """The current period's failed and retry-waiting deliveries (of `email` only, when given) become due
    now; each gets one more try at the next `digest send`. Past periods' are left alone."""
    now = now or utcnow()
    rows = ledger.unsent(db, [S.FAILED, S.RETRY], email)
    with db.session() as s:
        subs = subscriber_store.by_ids(s, {r[1] for r in rows})
    out, ids = Retried(), []
    for did, sid, period, status, at in rows:
        if status == S.RETRY and at is not None and at <= now:
            continue  # due already
        sub = subs.get(sid)
        if sub is None or planner.period_of(sub, now) != period:
            out.older += 1
            continue
        ids.append(did)
        if status == S.FAILED:
            out.failed += 1
        else:
            out.waiting += 1
    ledger.due_now(db, ids, now)
    return out


@dataclass(frozen=True)
class Holder:
    worker: str  # HOST:PID:TAG
    host: str
    pid: int | None
    deliveries: int
    until: datetime | None  # when its latest lease runs out
    state: str  # "running" (its process is alive on this host), "gone" (it is not), "elsewhere", "expired"

    def as_dict(self) -> dict:
        return {"worker": self.worker, "host": self.host, "pid": self.pid, "deliveries": self.deliveries,
                "until": self.until.isoformat() if self.until else None, "state": self.state}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def holders(db: Database) -> list[Holder]:
    """Who holds leases now, and whether each holder still runs."""
    return holders_of(ledger.holders(db))


def holders_of(leases: list[dict]) -> list[Holder]:
    """The holders of these leases (`ledger.holders`' rows), and whether each still runs."""
    here, now, out = socket.gethostname(), utcnow(), []
    for h in leases:
        host, _, rest = h["worker"].partition(":")
        pid_text = rest.partition(":")[0]
        pid = int(pid_text) if pid_text.isdigit() else None
        if h["until"] is not None and h["until"] < now:
            state = "expired"
        elif host != here or pid is None:
            state = "elsewhere"
        else:
            state = "running" if _alive(pid) else "gone"
        out.append(Holder(h["worker"], host, pid, h["deliveries"], h["until"], state))
    return out


def orphaned(db: Database) -> list[Holder]:
    """Holders whose process is gone on this host while their leases still hold: what they held waits
    for `digest deliveries release` (or for the leases to run out)."""
    return [h for h in holders(db) if h.state == "gone"]


@dataclass
class Released:
    released: int = 0
    holders: list[Holder] | None = None  # those released
    refused: list[Holder] | None = None  # still running, or on another host with a lease that holds


def release(db: Database) -> Released:
    """Hand back the deliveries whose holder is gone (its process ended on this host, or its lease ran
    out), due at once; a holder that still runs keeps its own."""
    found = holders(db)
    gone = [h for h in found if h.state in ("gone", "expired")]
    return Released(ledger.release_held_by(db, [h.worker for h in gone]), gone,
                    [h for h in found if h.state not in ("gone", "expired")])

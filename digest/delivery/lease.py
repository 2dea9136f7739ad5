"""Lease renewal: a message goes out only while its sender's lease on it holds.

While the lease a claim took has a quarter of its time left, nobody else can have taken the delivery
(a claim takes only leases that ran out); past that, the lease is taken again first (one UPDATE),
and a delivery another sender has taken over is never sent.
"""

from __future__ import annotations

from datetime import timedelta

from digest.delivery import ledger
from digest.delivery.channel import Outgoing
from digest.records import utcnow
from digest.store.db import Database


class Lease:
    def __init__(self, db: Database, worker: str, length: timedelta):
        self.db, self.worker, self.length = db, worker, length

    def still_held(self, o: Outgoing) -> bool:
        """Whether this worker may send `o` now (renewing the lease if it is running out)."""
        if o.held_until is not None and utcnow() < o.held_until - self.length / 4:
            return True
        return ledger.hold(self.db, o.delivery_id, self.worker, self.length)

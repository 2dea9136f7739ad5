"""Outcome recording: what became of each claimed delivery, written to the ledger as it happens.

A channel's outcome (digest.delivery.channel) becomes a ledger outcome: `Sent` is sent; `Retry` is a
retry at its time while tries are left, else failed (and a bounce, if its fault says so);
`RecipientFailed` is failed (and a bounce, if its fault says so). On SQLite what the sending
threads record at the same moment goes into one transaction (`GroupCommit`), before each thread
takes its next message; on PostgreSQL each thread commits its own on its own connection
(digest.delivery.pg_outcomes), without waiting for it (`later`): the pool waits for it before
the thread's next message is complete. The send report and the metrics count each outcome once
the ledger has it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from digest import metrics
from digest.config import Settings
from digest.delivery import bounces, ledger
from digest.delivery.channel import Fault, Outgoing, RecipientFailed, Retry, Sent
from digest.lazy import lazy
from digest.records import DeliveryStatus, utcnow
from digest.store.db import Database

pg_outcomes = lazy("digest.delivery.pg_outcomes")  # PostgreSQL only: psycopg is an extra
log = logging.getLogger("digest.sender")
S = DeliveryStatus


@dataclass
class SendReport:
    """What one send run did: deliveries sent, retried (deferred), failed, suppressed (held back at
    sending: the address is suppressed, unsubscribed or gone), given back (unspent: refused by the
    relay for a reason of its own, or not tried once the run stopped), and errors: what stopped it,
    and one line for each kind of refusal by the relay (digest.delivery.breaker), so a run that
    has any ends non-zero. `breaker`: the line the circuit breaker stopped the run with, if it did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    suppressed: int = 0
    errors: list[str] = field(default_factory=list)
    given_back: int = 0
    breaker: str | None = None
    # the outcomes by the channel that carried them: {"smtp": {"sent": 3, "retried": 1}, "webhook-slack": ...}
    by_transport: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, outcome: str, transport: str | None, n: int = 1) -> None:
        """Add `n` to an outcome ("sent", "retried", "failed", "suppressed"), and to its channel's."""
        setattr(self, outcome, getattr(self, outcome) + n)
        if transport:
            per = self.by_transport.setdefault(transport, {})
            per[outcome] = per.get(outcome, 0) + n

    def add(self, other: SendReport) -> None:
        """Add up another run's report (a sending process's)."""
        for key in ("sent", "retried", "failed", "suppressed", "given_back"):
            setattr(self, key, getattr(self, key) + getattr(other, key))
        self.breaker = self.breaker or other.breaker
        for via, counts in other.by_transport.items():
            per = self.by_transport.setdefault(via, {})
            for key, n in counts.items():
                per[key] = per.get(key, 0) + n
        self.errors += [e for e in other.errors if e not in self.errors]


class GroupCommit:
    """Writes items for many threads: the first to arrive writes everything waiting in one call (the
    items of threads that came meanwhile included) while the others wait; each `record` returns once
    its own item is written, or raises what the write raised."""

    def __init__(self, write: Callable[[list], None]):
        self.write = write
        self._cond = threading.Condition()
        self._waiting: list = []
        self._arrived = 0  # items handed in so far
        self._written = 0  # of those, the first this many are written
        self._writing = False
        self._error: BaseException | None = None  # a failed write fails every later one too

    def record(self, item) -> None:
        with self._cond:
            self._waiting.append(item)
            self._arrived += 1
            ticket = self._arrived
            while self._written < ticket:
                if self._error is not None:
                    raise self._error
                if self._writing:
                    self._cond.wait()
                    continue
                batch, self._waiting, self._writing = self._waiting, [], True
                self._cond.release()
                try:
                    self.write(batch)
                except BaseException as err:
                    self._error = err
                finally:
                    self._cond.acquire()
                    self._writing = False
                    if self._error is None:
                        self._written += len(batch)
                    self._cond.notify_all()


class Recorder:
    """Records a run's outcomes (and bounces, in the same transaction) for deliveries `worker` still
    holds, and counts them in `report`; `label` is the metrics' channel when an outcome names none."""

    def __init__(self, db: Database, settings: Settings, worker: str, label: str,
                 progress: Callable[[int], None] | None = None):
        self.db, self.settings, self.worker, self.label, self.progress = db, settings, worker, label, progress
        self.report = SendReport()
        self.lock = threading.Lock()  # guards `report`
        # SQLite writes one transaction at a time: what threads record meanwhile goes into the next one.
        # PostgreSQL commits many at once: each thread writes its own, on its own connection, not queued
        # behind another thread's commit (the server flushes the WAL of commits that coincide together).
        postgresql = db.engine.dialect.name == "postgresql"
        self._record = GroupCommit(self._write).record if not postgresql else lambda item: self._write([item])
        # PostgreSQL: each sending thread's own connection, for the outcomes it does not wait for (`later`)
        self._writers = threading.local() if postgresql else None

    def finish(self, delivery_id: int, status: DeliveryStatus, outcome: str, bounce: dict | None = None,
               via: str | None = None, **values) -> None:
        """Record one outcome; returns once it is in the ledger."""
        self._record((ledger.Outcome(delivery_id, status, bounce=bounce, **values), outcome, via))

    def outcome(self, o: Outgoing, result: Sent | Retry | RecipientFailed, via: str) -> None:
        """Record what a channel said of one item it sent: the one retry rule for every channel."""
        self._record(self._entry(o, result, via))

    def later(self, o: Outgoing, result: Sent | Retry | RecipientFailed,
              via: str) -> Callable[[], None] | None:
        """`outcome`, without waiting for the ledger where it can (PostgreSQL, no bounce to record):
        returns the call that waits for it (and then counts it); None when it is recorded already.
        This thread's next `later` or `outcome` comes after that call."""
        entry = self._entry(o, result, via)
        if self._writers is None or entry[0].bounce:
            self._record(entry)
            return None
        writer = self._writer()
        writer.start(self.worker, entry[0])

        def wait() -> None:
            self._count([entry], {entry[0].delivery_id} if writer.wait() else set())

        return wait

    def close_thread(self) -> None:
        """This thread sends no more: its own connection for outcomes, if it has one, is closed."""
        if self._writers is not None and (writer := getattr(self._writers, "writer", None)) is not None:
            writer.close()
            self._writers.writer = None

    def _writer(self):
        if (writer := getattr(self._writers, "writer", None)) is None:
            writer = self._writers.writer = pg_outcomes.OutcomeWriter(self.db.engine)
        return writer

    def _entry(self, o: Outgoing, result: Sent | Retry | RecipientFailed,
               via: str) -> tuple[ledger.Outcome, str, str | None]:
        """The ledger outcome of what a channel said, and how the report counts it."""
        attempts = o.attempts + 1
        if isinstance(result, Sent):
            log.info("message sent delivery=%s via=%s papers=%d", o.delivery_id, via, o.rendered.shown)
            return (ledger.Outcome(o.delivery_id, S.SENT, attempts=attempts, sent_at=utcnow(),
                                   subject=o.rendered.subject), "sent", via)
        if isinstance(result, Retry):
            log.warning("message deferred delivery=%s via=%s attempt=%d: %s", o.delivery_id, via, attempts,
                        result.error)
            if attempts < self.settings.mail.max_attempts:
                return (ledger.Outcome(o.delivery_id, S.RETRY, attempts=attempts, error=result.error,
                                       next_attempt_at=result.at), "retried", via)
        else:
            log.warning("message refused delivery=%s via=%s: %s", o.delivery_id, via, result.error)
        return (ledger.Outcome(o.delivery_id, S.FAILED, attempts=attempts, error=result.error,
                               bounce=_bounce(o, attempts, result.error, result.fault)), "failed", via)

    def _write(self, batch: list[tuple[ledger.Outcome, str, str | None]]) -> None:
        self._count(batch, set(ledger.finish(self.db, self.worker, [o for o, _, _ in batch],
                                             on_bounce=self._bounce)))

    def _count(self, batch: list[tuple[ledger.Outcome, str, str | None]], done: set[int]) -> None:
        """Count outcomes the ledger has now (`done`: the ids it recorded; the rest were taken over)."""
        with self.lock:
            for o, outcome, via in batch:
                if o.delivery_id not in done:
                    log.warning("delivery=%s was taken over by another worker before its outcome was "
                                "recorded",
                                o.delivery_id)
                self.report.count(outcome, via)
                metrics.count_messages(via or self.label, outcome)  # once the ledger has it, as the report
            if self.progress:
                self.progress(len(batch))

    def _bounce(self, session, o: ledger.Outcome) -> None:
        bounces.record(session, self.settings, source="smtp", delivery_id=o.delivery_id, **(o.bounce or {}))


def _bounce(o: Outgoing, attempts: int, error: str, fault: Fault | None) -> dict | None:
    """The bounce a failure records against the recipient, if its fault says it is theirs."""
    if fault is None:
        return None
    return dict(address=o.recipient, kind=fault.kind, key=f"smtp|{o.delivery_id}|{attempts}",
                status=fault.status,
                detail=error)

"""Sending: claim due deliveries from the ledger with a lease, render, send, record the outcome.

The ledger is the queue. A delivery goes

    planned | retry (due) | sending (lease ran out) --claim--> sending (worker_id, lease_expires_at)
    sending --accepted--> sent
            --4xx or lost connection--> retry (next_attempt_at, doubling backoff), failed after max_attempts
            --5xx--> failed (and a bounce, counted by the suppression policy)
            --unsubscribed, suppressed or removed--> suppressed
            --transport down or interrupted--> back to planned/retry, due at once

The calling thread claims and renders batches; `smtp.pool_size` threads each own one SMTP connection
and send (threads, because a sender mostly waits on the server; the rendering stays in one thread).
Just before a message goes out its worker takes the lease again (one UPDATE): a delivery another
worker has taken over is never sent. So a crash (even SIGKILL) loses nothing, and sends at most one
message per connection twice: the one the server accepted before the ledger said so. More
throughput: several `digest send` processes at once (`FOR UPDATE SKIP LOCKED` on PostgreSQL).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, case, or_, select, update
from sqlalchemy.orm import selectinload

from digest.config import Settings
from digest.delivery import bounces
from digest.mail import signing
from digest.mail.message import Envelope, ascii_address, message_bytes, parse_address
from digest.mail.ratelimit import RateLimiter
from digest.mail.transport import (
    PermanentFailure,
    TemporaryFailure,
    Transport,
    TransportUnavailable,
    pool_from_settings,
)
from digest.planning.planner import load_papers, utcnow
from digest.records import Paper, Pick
from digest.render import Rendered, default_renderer
from digest.render.compose import compose
from digest.store.db import Database
from digest.store.models import Delivery, DeliveryItem, Subscriber, Suppression
from digest.subscriptions.links import Links
from digest.subscriptions.subscribers import is_mailable

log = logging.getLogger("digest.delivery.sender")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    suppressed: int = 0
    skipped: int = 0  # nothing new (from planning)
    errors: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ ledger


def due_clause(now: datetime, worker: str | None = None) -> ColumnElement[bool]:
    """Deliveries a sender may take now: planned, a retry due at `now`, or a lease run out (on the real
    clock) that is not this worker's own."""
    expired = (Delivery.status == "sending") & (Delivery.lease_expires_at < utcnow())
    if worker is not None:
        expired &= or_(Delivery.worker_id.is_(None), Delivery.worker_id != worker)
    return or_(Delivery.status == "planned", (Delivery.status == "retry") & (Delivery.next_attempt_at <= now), expired)


def claim(db: Database, worker: str, now: datetime, limit: int, email: str | None = None,
          lease: timedelta = timedelta(minutes=10)) -> list[int]:
    """Atomically take up to `limit` due deliveries: planned, retry due at `now`, or a lease run out.

    Leases are on the real clock; `now` only decides which retries are due.
    """
    due = due_clause(now, worker)
    pick = select(Delivery.id).where(due).order_by(Delivery.id).limit(limit).with_for_update(skip_locked=True)
    if email:
        pick = pick.where(Delivery.email == email)
    with db.session() as s:
        ids = list(s.scalars(pick))
        if not ids:
            return []
        got = s.execute(
            update(Delivery).where(Delivery.id.in_(ids), due)
            .values(status="sending", worker_id=worker, lease_expires_at=utcnow() + lease)
            .returning(Delivery.id)
        ).scalars().all()
    return sorted(got)


def _mine(delivery_id: int, worker: str):
    return (Delivery.id == delivery_id) & (Delivery.worker_id == worker) & (Delivery.status == "sending")


def hold(db: Database, delivery_id: int, worker: str, lease: timedelta) -> bool:
    """Renew this worker's lease just before sending; False if another worker has taken it over."""
    with db.session() as s:
        return s.execute(update(Delivery).where(_mine(delivery_id, worker))
                         .values(lease_expires_at=utcnow() + lease)).rowcount == 1


def release(db: Database, ids: Sequence[int], worker: str) -> None:
    """Give claimed deliveries back, due at once, their attempts unchanged (nothing was tried)."""
    if not ids:
        return
    with db.session() as s:
        s.execute(_give_back_rows(Delivery.id.in_(list(ids)), Delivery.worker_id == worker))


def release_expired(db: Database) -> int:
    """Give back every delivery whose lease has run out (its sender died); returns how many."""
    with db.session() as s:
        return s.execute(_give_back_rows(Delivery.lease_expires_at < utcnow())).rowcount


def _give_back_rows(*where: ColumnElement[bool]):
    """The UPDATE that returns `sending` rows to the ledger, due at once, attempts unchanged."""
    return (update(Delivery).where(Delivery.status == "sending", *where)
            .values(status=case((Delivery.attempts == 0, "planned"), else_="retry"), next_attempt_at=utcnow(),
                    worker_id=None, lease_expires_at=None))


def _give_back(db: Database, worker: str, keep: set[int]) -> None:
    """After a run: whatever it still holds (it stopped early) is due again at once."""
    try:
        with db.session() as s:
            held = [i for i in s.scalars(select(Delivery.id).where(Delivery.worker_id == worker,
                                                                    Delivery.status == "sending")) if i not in keep]
        release(db, held, worker)
    except Exception:  # the database is gone: the leases will run out instead
        log.exception("could not give back the deliveries of worker %s", worker)


def backoff(attempts: int, base: float = 300.0, cap: float = 21600.0) -> timedelta:
    """Wait before retry number `attempts`: base, 2 x base, 4 x base ... at most `cap` seconds."""
    return timedelta(seconds=min(base * 2 ** max(0, attempts - 1), cap))


# --------------------------------------------------------------------------------------- rendering


@dataclass
class Outgoing:
    delivery_id: int
    subscriber_id: int
    recipient: str
    rendered: Rendered
    data: bytes  # the finished message, signed when DKIM is configured
    attempts: int


def build_outgoing(db: Database, settings: Settings, ids: Sequence[int], now: datetime | None = None,
                   signer: signing.DkimSigner | None = None,
                   ) -> tuple[list[Outgoing], list[int], list[tuple[int, str]]]:
    """Render the claimed deliveries.

    Returns (messages, ids to suppress instead, (id, error) of those that could not be rendered).
    """
    links = Links(settings.web.base_url, settings.secret())
    renderer = default_renderer()
    out: list[Outgoing] = []
    blocked: list[int] = []
    broken: list[tuple[int, str]] = []
    with db.session() as s:
        rows = s.scalars(
            select(Delivery).options(selectinload(Delivery.items)).where(Delivery.id.in_(list(ids))).order_by(Delivery.id)
        ).all()
        subs = {x.id: x for x in s.scalars(
            select(Subscriber).options(selectinload(Subscriber.topics))
            .where(Subscriber.id.in_([d.subscriber_id for d in rows]))
        )}
        suppressed = set(s.scalars(select(Suppression.email).where(Suppression.email.in_([d.email for d in rows]))))
        papers = {p.id: p for p in load_papers(s, ids=sorted({i.paper_id for d in rows for i in d.items}))}
        for d in rows:
            sub = subs.get(d.subscriber_id)
            if sub is None or not is_mailable(sub, now or utcnow()) or d.email in suppressed:
                blocked.append(d.id)
                continue
            try:
                rendered, env = render_envelope(settings, links, renderer, sub, d, papers, now or utcnow())
                data = message_bytes(env, rendered.text, rendered.html)
                out.append(Outgoing(d.id, sub.id, ascii_address(d.email), rendered, signer.sign(data) if signer else data,
                                    d.attempts))
            except Exception as err:  # bad data in one delivery must not stop the others
                log.exception("cannot render delivery=%s", d.id)
                broken.append((d.id, f"render error: {type(err).__name__}: {err}"))
    return out, blocked, broken


def render_envelope(settings: Settings, links: Links, renderer, sub: Subscriber, d: Delivery,
                    papers: dict[int, Paper], now: datetime) -> tuple[Rendered, Envelope]:
    def as_pick(i: DeliveryItem) -> Pick:
        return Pick(paper_id=i.paper_id, score=i.score, topic=i.topic, why=i.why)

    content = compose(
        site_name=settings.digest.site_name, email=sub.email, frequency=sub.frequency,
        topics=[t.phrase for t in sub.topics if t.kind == "include"],
        picks=[as_pick(i) for i in d.items if i.kind == "pick" and i.paper_id in papers],
        trending=[as_pick(i) for i in d.items if i.kind == "trending" and i.paper_id in papers],
        papers=papers, when=d.planned_at.astimezone(ZoneInfo(sub.timezone)),
        archive_url=links.archive(sub.id, d.id), prefs_url=links.preferences(sub.id),
        unsubscribe_url=links.unsubscribe(sub.id), excerpt_chars=settings.digest.excerpt_chars,
        feedback=lambda pid, v: links.feedback(sub.id, pid, v),
    )
    rendered = renderer.render(content)
    mail = settings.mail
    env = Envelope(from_address=mail.from_address, to_address=sub.email, to_name=sub.name, subject=rendered.subject,
                   message_id=d.message_id, list_id=mail.list_id, unsubscribe_url=links.unsubscribe(sub.id),
                   unsubscribe_mailto=mail.unsubscribe_mailto, reply_to=mail.reply_to, date=now)
    return rendered, env


# ----------------------------------------------------------------------------------------- sending


class _Run:
    """State shared by the claiming thread and the sending threads of one `send()`."""

    def __init__(self, db: Database, settings: Settings, worker: str, limiter: RateLimiter,
                 progress: Callable[[int], None] | None, queue_size: int):
        self.db, self.settings, self.worker, self.limiter, self.progress = db, settings, worker, limiter, progress
        self.sender = sender_address(settings)
        self.lease = timedelta(seconds=settings.mail.lease_seconds)
        self.report = SendReport()
        self.queue: queue.Queue[Outgoing | None] = queue.Queue(maxsize=queue_size)
        self.stopped = threading.Event()
        self.uncertain: set[int] = set()  # may have been sent, outcome unrecorded: left to its lease
        self._lock = threading.Lock()

    def stop(self, error: str) -> None:
        with self._lock:
            if not self.stopped.is_set():
                self.report.errors.append(error)
                self.stopped.set()

    def put(self, o: Outgoing) -> bool:
        """Hand a message to the senders; False once the run has stopped."""
        while not self.stopped.is_set():
            try:
                self.queue.put(o, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def finish(self, delivery_id: int, status: str, outcome: str, bounce: dict | None = None, **values) -> None:
        """Record an outcome (and a bounce, in the same transaction) if the lease is still ours."""
        with self.db.session() as s:
            done = s.execute(update(Delivery).where(_mine(delivery_id, self.worker))
                             .values(status=status, worker_id=None, lease_expires_at=None, **values)).rowcount
            if done and bounce:
                bounces.record(s, self.settings, source="smtp", delivery_id=delivery_id, **bounce)
        if not done:
            log.warning("delivery=%s was taken over by another worker before its outcome was recorded", delivery_id)
        with self._lock:
            setattr(self.report, outcome, getattr(self.report, outcome) + 1)
            if self.progress:
                self.progress(1)

    def work(self, transport: Transport) -> None:
        """One sending thread: its own connection, messages from the queue until None."""
        try:
            while (o := self.queue.get()) is not None:
                if self.stopped.is_set():
                    continue  # given back by send() at the end
                try:
                    self.deliver(transport, o)
                except TransportUnavailable as err:  # not sent: given back with the rest
                    self.stop(str(err))
                except Exception as err:  # e.g. the database went away: sent or not, its lease decides
                    log.exception("sending stopped at delivery=%s", o.delivery_id)
                    with self._lock:
                        self.uncertain.add(o.delivery_id)
                    self.stop(f"{type(err).__name__}: {err}")
        except BaseException:
            self.stop("a sending thread died")  # the claiming thread must not wait for it
            raise
        finally:
            transport.close()

    def deliver(self, transport: Transport, o: Outgoing) -> None:
        mail = self.settings.mail
        self.limiter.acquire()
        if not hold(self.db, o.delivery_id, self.worker, self.lease):
            log.warning("delivery=%s was taken over by another worker; not sending it", o.delivery_id)
            return
        attempts = o.attempts + 1
        try:
            transport.send(o.data, self.sender, o.recipient)
        except TemporaryFailure as err:
            error = str(err)[:500]
            log.warning("message deferred delivery=%s attempt=%d: %s", o.delivery_id, attempts, error)
            if attempts < mail.max_attempts:
                self.finish(o.delivery_id, "retry", "retried", attempts=attempts, last_error=error,
                            next_attempt_at=utcnow() + backoff(attempts, mail.retry_backoff, mail.retry_max_backoff))
                return
            # The server kept deferring this recipient: a soft bounce. A connection problem is not theirs.
            bounce = None if err.code in (None, 421) else dict(
                address=o.recipient, kind="soft", key=f"smtp|{o.delivery_id}|{attempts}", status=err.status, detail=error)
            self.finish(o.delivery_id, "failed", "failed", bounce, attempts=attempts, last_error=error)
            return
        except PermanentFailure as err:
            error = str(err)[:500]
            log.warning("message refused delivery=%s: %s", o.delivery_id, error)
            bounce = dict(address=o.recipient, kind=bounces.classify(err.status) or "hard",
                          key=f"smtp|{o.delivery_id}|{attempts}", status=err.status, detail=error)
            self.finish(o.delivery_id, "failed", "failed", bounce, attempts=attempts, last_error=error)
            return
        self.finish(o.delivery_id, "sent", "sent", attempts=attempts, sent_at=utcnow(), subject=o.rendered.subject,
                    last_error=None)
        log.info("message sent delivery=%s papers=%d", o.delivery_id, o.rendered.shown)


def send(db: Database, settings: Settings, *, transport: Transport | Sequence[Transport] | None = None,
         now: datetime | None = None, email: str | None = None, worker: str | None = None, batch: int = 50,
         progress: Callable[[int], None] | None = None, limiter: RateLimiter | None = None) -> SendReport:
    """Send every due delivery in the ledger through `transport` (one, or a pool: one thread each).

    Without a transport, `mail.smtp.pool_size` connections are made from the settings.
    """
    as_of = now or utcnow()
    worker = worker or worker_name()
    if transport is None:
        pool: list[Transport] = pool_from_settings(settings)
    elif isinstance(transport, Sequence):
        pool = list(transport)
    else:
        pool = [transport]
    if not pool:
        raise ValueError("send() needs at least one transport")
    signer = signing.from_settings(settings)  # a bad key is refused before anything is claimed
    run = _Run(db, settings, worker, limiter or RateLimiter.from_settings(settings), progress, max(batch, len(pool)))
    try:
        pool[0].open()  # nothing is claimed while the server cannot be reached
    except TransportUnavailable as err:
        run.report.errors.append(str(err))
        return run.report
    threads = [threading.Thread(target=run.work, args=(t,), name=f"digest-send-{i}", daemon=True)
               for i, t in enumerate(pool)]
    for t in threads:
        t.start()
    try:
        while not run.stopped.is_set() and (ids := claim(db, worker, as_of, batch, email, run.lease)):
            outgoing, blocked, broken = build_outgoing(db, settings, ids, signer=signer)
            for did in blocked:
                run.finish(did, "suppressed", "suppressed")
            for did, error in broken:
                run.finish(did, "failed", "failed", last_error=error[:500])
            for o in outgoing:
                if not run.put(o):
                    break
    except BaseException as err:
        run.stop(f"interrupted: {type(err).__name__}: {err}")
        raise
    finally:
        for _ in threads:
            run.queue.put(None)
        for t in threads:
            t.join()
        _give_back(db, worker, run.uncertain)
    r = run.report
    log.info("send finished: sent=%d retried=%d failed=%d suppressed=%d", r.sent, r.retried, r.failed, r.suppressed)
    return r


def sender_address(settings: Settings) -> str:
    return parse_address(settings.mail.from_address).addr_spec

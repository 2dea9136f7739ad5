"""The send loop of one process: claim due deliveries from the ledger with a lease, render them, send
them through their channels, record each outcome.

The ledger is the queue. A delivery goes

    planned | retry (due) | sending (lease ran out) --claim--> sending (worker_id, lease_expires_at)
    sending --Sent--> sent
            --Retry--> retry (next_attempt_at), failed once max_attempts are used up
            --RecipientFailed--> failed (and a bounce, if the channel says it is the recipient's)
            --unsubscribed, suppressed or removed--> suppressed
            --ChannelFailed, or the run stopping--> handed back: planned/retry, due at once

`send_here` is the loop; its parts each have a module: claiming (digest.delivery.ledger), rendering
(digest.delivery.outgoing), the channel pool of sending threads (digest.delivery.pool), outcome
recording (digest.delivery.recording) and lease renewal (digest.delivery.lease). It sees the ledger
and channels only (digest.delivery.channel): what reaches an inbox or a team channel is the
channel's business. A crash (even SIGKILL) loses nothing, and sends at most one message per
connection twice: the one the peer took before the ledger said so. More throughput: sending
processes (digest.delivery.processes), or several `digest send` commands at once (`FOR UPDATE SKIP
LOCKED` on PostgreSQL). `digest.delivery.sender.send` chooses.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from digest import metrics
from digest.config import Settings
from digest.delivery import ledger
from digest.delivery.breaker import Breaker
from digest.delivery.channel import Setup
from digest.delivery.channels import Channels, connections
from digest.delivery.lease import Lease
from digest.delivery.outgoing import render_batch
from digest.delivery.pool import STOPPING, Pool
from digest.delivery.recording import Recorder, SendReport
from digest.mail import signing
from digest.mail.ratelimit import RateLimiter
from digest.mail.transport import Transport
from digest.records import DeliveryStatus, utcnow
from digest.render import renderer_for
from digest.render.compose import Entries
from digest.store.db import Database
from digest.subscriptions.links import links_for
from digest.throughput import short_switches

log = logging.getLogger("digest.sender")
S = DeliveryStatus


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def setup_for(settings: Settings, signer: signing.DkimSigner | None = None) -> Setup:
    """What the channels of a run (or a preview) are made with: links, the compiled templates, DKIM."""
    return Setup(settings=settings, links=links_for(settings),
                 renderer=renderer_for(settings.render.templates_dir), signer=signer,
                 secret=settings.secrets())


def send_here(db: Database, settings: Settings, *, transport: Transport | Sequence[Transport] | None = None,
              now: datetime | None = None, email: str | None = None, worker: str | None = None,
              batch: int = 200, progress: Callable[[int], None] | None = None,
              limiter: RateLimiter | None = None, stop: threading.Event | None = None) -> SendReport:
    """Send every due delivery in the ledger, in this process, through `mail.smtp.pool_size` sending
    threads (or one per mail transport of `transport`, a caller's own). Once `stop` is set no new
    message starts: the ones in flight finish, the rest is handed back (`STOPPING` in the report's
    errors)."""
    as_of = now or utcnow()
    started = time.perf_counter()
    worker = worker or worker_name()
    setup = setup_for(settings, signing.from_settings(settings))  # a bad key is refused before any claim
    mail = _mail_transports(settings, transport)
    threads = [Channels(replace(setup, transport=t)) for t in mail]
    label = metrics.transport_name(mail[0]) if mail[0] is not None else settings.mail.transport
    recorder = Recorder(db, settings, worker, label, progress)
    lease = Lease(db, worker, timedelta(seconds=settings.mail.lease_seconds))
    limiter = limiter or RateLimiter.from_settings(settings)
    breaker = Breaker()
    pool = Pool(threads, recorder, lease, limiter, max(batch, len(threads)), stop, breaker)
    if (down := threads[0].get(settings.mail.transport).open()) is not None:  # nothing claimed while down
        recorder.report.errors.append(down.error)
        return recorder.report
    with short_switches():
        pool.start()
        with _holding_lock:
            _holding[worker] = lambda: _release(db, worker, pool.unsure())
        try:
            _claim_and_render(db, Channels(setup), pool, recorder, worker, as_of, batch, email, lease)
        except BaseException as err:
            pool.stop(f"interrupted: {type(err).__name__}: {err}")
            raise
        finally:
            pool.join()
            recorder.report.given_back += _release(db, worker, pool.uncertain)
            with _holding_lock:
                _holding.pop(worker, None)
    r = recorder.report
    r.breaker = breaker.tripped
    r.errors += [line for line in breaker.lines() if line not in r.errors]
    metrics.send_run(label, r.sent, time.perf_counter() - started)
    log.info("send finished: sent=%d retried=%d failed=%d suppressed=%d", r.sent, r.retried, r.failed,
             r.suppressed)
    return r


def _mail_transports(settings: Settings,
                     transport: Transport | Sequence[Transport] | None) -> list[Transport | None]:
    """The sending threads' mail transports: the caller's, else as many threads as the mail channel
    keeps connections (`channels.connections`), whose channels make their own."""
    if transport is None:
        return [None] * connections(settings)
    pool = list(transport) if isinstance(transport, Sequence) else [transport]
    if not pool:
        raise ValueError("send() needs at least one transport")
    return pool


def _claim_and_render(db: Database, channels: Channels, pool: Pool, recorder: Recorder, worker: str,
                      as_of: datetime, batch: int, email: str | None, lease: Lease) -> None:
    """The claiming thread: claim a batch, render it, hand its items to the pool, until nothing is due."""
    entries = Entries(excerpt_chars=channels.setup.settings.digest.excerpt_chars)  # each paper's part once
    broken: list[str] = []  # deliveries that could not be made: the admin's to fix (a template, an address)
    try:
        while not pool.stopped.is_set():
            if pool.stop_event is not None and pool.stop_event.is_set():
                pool.stop(STOPPING)
                break
            claimed_at = utcnow()  # the lease the claim takes runs out a moment after claimed_at + lease
            if not (ids := ledger.claim(db, worker, as_of, batch, email, lease.length)):
                break
            made = render_batch(db, channels, ids, utcnow(), entries, held_until=claimed_at + lease.length)
            for did in made.held:
                recorder.finish(did, S.SUPPRESSED, "suppressed")  # not counted by channel: nothing was sent
            for did, error in made.broken:
                recorder.finish(did, S.FAILED, "failed", error=error[:500])
                broken.append(error)
            for o in made.items:
                if not pool.put(o):
                    break
    finally:
        channels.close()
        if broken:
            recorder.report.errors.append(f"{len(broken)} deliveries could not be made, the first: "
                                          f"{broken[0].splitlines()[0][:300]}")


# The send loops running in this process: worker -> hand back what it holds but is not sending now.
_holding: dict[str, Callable[[], None]] = {}
_holding_lock = threading.Lock()


def give_back_now(timeout: float) -> None:
    """Hand back what every send loop of this process holds, except the messages in flight (their
    outcome is unknown: left to their leases), for a process about to end at once (a second signal).
    Waits at most `timeout` seconds: a database that does not answer leaves the rest to the leases."""
    with _holding_lock:
        calls = list(_holding.values())
    if calls:
        done = threading.Thread(target=lambda: [call() for call in calls], daemon=True)
        done.start()
        done.join(timeout)


def _release(db: Database, worker: str, keep: set[int]) -> int:
    """After a run: whatever it still holds (it stopped early, or the relay refused it) is due again
    at once, unspent; returns how many."""
    try:
        return ledger.release(db, worker, keep=keep)
    except Exception:  # the database is gone: the leases will run out instead
        log.exception("could not hand back the deliveries of worker %s", worker)
        return 0

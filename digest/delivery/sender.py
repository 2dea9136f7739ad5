"""Sending every due delivery: in this process (digest.delivery.loop) or in several sending processes
(digest.delivery.processes), as `workers` says."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from digest.config import Settings
from digest.delivery.loop import send_here
from digest.delivery.processes import send_in_processes
from digest.delivery.recording import SendReport
from digest.mail.ratelimit import RateLimiter
from digest.mail.transport import Transport
from digest.store.db import Database


def send(db: Database, settings: Settings, *, transport: Transport | Sequence[Transport] | None = None,
         now: datetime | None = None, email: str | None = None, worker: str | None = None, batch: int = 200,
         progress: Callable[[int], None] | None = None, limiter: RateLimiter | None = None,
         stop: threading.Event | None = None, workers: int | None = None) -> SendReport:
    """Send every due delivery in the ledger through the subscribers' channels.

    Without a transport, in `workers` sending processes (default `mail.workers`), each with
    `mail.smtp.pool_size` connections; with one (a caller's own, or a pool of them: one thread each),
    in this process. Once `stop` is set no new message starts: the ones in flight finish, the rest is
    handed back (`STOPPING` in the report's errors).
    """
    workers = workers or settings.mail.workers
    if workers > 1 and transport is None and limiter is None:
        return send_in_processes(db, settings, workers, now=now, email=email, batch=batch, progress=progress,
                                 stop=stop)
    return send_here(db, settings, transport=transport, now=now, email=email, worker=worker, batch=batch,
                     progress=progress, limiter=limiter, stop=stop)

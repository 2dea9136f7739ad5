"""Sending processes: `send` in `workers` processes at once, on one database, so that a machine's
cores render in parallel and a slow relay is fed by more connections.

Each process claims its own batches (the claim is atomic, so no delivery goes to two of them) and
keeps an equal share of the rate limits. A process that dies loses nothing: what it held is resumed
once its leases run out, as after any crash.

The processes own their lifecycle: `SendingProcesses` starts them (each imports, compiles the
templates and opens the database, then waits), `run` lets them send until nothing is due and adds
up their reports, `cancel` ends them without claiming anything. Used as a context manager, leaving
it cancels whatever did not run. `digest run` and `digest send` start them before planning, so they
warm up on the core planning leaves idle.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime

from digest import metrics
from digest.config import Settings
from digest.delivery.loop import send_here
from digest.delivery.recording import SendReport
from digest.mail.ratelimit import RateLimiter
from digest.render import renderer_for
from digest.store.db import Database
from digest.throughput import few_collections


class SendingProcesses:
    """The `workers` processes of one send, started at once; each waits to be told to send."""

    def __init__(self, db: Database, settings: Settings, workers: int, *, now: datetime | None = None,
                 email: str | None = None, batch: int = 200):
        window = settings.mail.smtp.window_limit
        workers = min(workers, window) if window else workers  # every share of the window keeps at least one
        # a fresh interpreter: no engine, thread or lock is inherited
        ctx = multiprocessing.get_context("spawn")
        self.settings = settings
        self.go, self.halt, self.count, self.reports = (ctx.Event(), ctx.Event(), ctx.Value("q", 0),
                                                        ctx.Queue())
        kwargs = dict(now=now, email=email, batch=batch, share=workers,
                      level=logging.getLogger().getEffectiveLevel())
        self.procs = [ctx.Process(target=_worker_process,
                                  args=(db.url, settings, kwargs, self.go, self.halt, self.count,
                                        self.reports),
                                  name=f"digest-send-worker-{i}") for i in range(workers)]
        self._done = False
        for proc in self.procs:
            proc.start()

    def __enter__(self) -> SendingProcesses:
        return self

    def __exit__(self, *exc) -> None:
        if not self._done:
            self.cancel()

    def cancel(self) -> None:
        """Nothing to send after all: the processes end without claiming anything."""
        self._done = True
        self.halt.set()
        for proc in self.procs:
            proc.join()

    def run(self, progress: Callable[[int], None] | None = None,
            stop: threading.Event | None = None) -> SendReport:
        """Let them send until nothing is due; their reports added up."""
        self._done = True
        started = time.perf_counter()
        self.go.set()
        got = self._wait(progress, stop)
        total = SendReport()
        for r in got:
            total.add(r)
        for proc in self.procs:
            if proc.exitcode != 0:
                total.errors.append(f"a sending process died (exit code {proc.exitcode}); what it held is "
                                    "sent once "
                                    f"its leases run out ({self.settings.mail.lease_seconds:g} s)")
        # The processes' counters died with them: this process counts what their reports say (a process
        # that died before reporting is in the database gauges, digest_deliveries, not here).
        for via, counts in total.by_transport.items():
            for key, n in counts.items():
                metrics.count_messages(via, key, n)
        label = self.settings.mail.transport
        metrics.count_messages(label, "suppressed", total.suppressed)  # as one process counts them
        metrics.send_run(label, total.sent, time.perf_counter() - started)
        return total

    def _wait(self, progress: Callable[[int], None] | None, stop: threading.Event | None) -> list[SendReport]:
        """Their reports, as they come (a process exits only once its report is read); `progress` told
        what they sent meanwhile; `stop`, or an exception here (Ctrl-C), stops them all."""
        told, got = 0, []

        def tell() -> None:
            nonlocal told
            if progress is not None and self.count.value > told:
                progress(self.count.value - told)
                told = self.count.value

        try:
            while any(proc.is_alive() for proc in self.procs) or not self.reports.empty():
                if stop is not None and stop.is_set():
                    self.halt.set()
                while not self.reports.empty():
                    got.append(SendReport(**self.reports.get()))
                self.procs[0].join(timeout=0.1)
                tell()
        except BaseException:
            self.halt.set()  # every process stops as a single sender would, and gives back what it holds
            for proc in self.procs:
                proc.join()
            raise
        for proc in self.procs:
            proc.join()
        tell()
        return got


def send_in_processes(db: Database, settings: Settings, workers: int, *, now: datetime | None = None,
                      email: str | None = None, batch: int = 200,
                      progress: Callable[[int], None] | None = None,
                      stop: threading.Event | None = None) -> SendReport:
    """`send` in `workers` processes at once; `stop` reaches every process; their reports added up."""
    return SendingProcesses(db, settings, workers, now=now, email=email, batch=batch).run(progress, stop)


def _worker_process(url: str, settings: Settings, kwargs: dict, go, halt, count, reports) -> None:
    """One sending process of `SendingProcesses`: ready (templates compiled), it waits for `go`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent hears Ctrl-C and tells every process at once
    logging.basicConfig(level=kwargs.pop("level"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    # stopped like a single sender: gives back what it holds
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (halt.wait(), stop.set(), go.set()), daemon=True).start()
    renderer_for(settings.render.templates_dir)
    go.wait()
    if stop.is_set():  # cancelled before it began: nothing claimed, nothing to report
        return

    def counted(n: int) -> None:
        with count.get_lock():
            count.value += n

    share = kwargs.pop("share")
    db = Database(url)
    try:
        with few_collections():
            report = send_here(db, settings, stop=stop, progress=counted,
                               limiter=RateLimiter.from_settings(settings, share), **kwargs)
    finally:
        db.dispose()
    reports.put(asdict(report))

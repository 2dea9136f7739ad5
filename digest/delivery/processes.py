"""Sending processes: `send` in `workers` processes at once, on one database, so that a machine's
cores render in parallel and a slow relay is fed by more connections.

Each process claims its own batches (the claim is atomic, so no delivery goes to two of them) and
keeps an equal share of the rate limits. A process that dies loses nothing: what it held is resumed
once its leases run out, as after any crash.

The processes own their lifecycle: `SendingProcesses` starts them (each imports, compiles the
templates and opens the database, then waits), `run` lets them send until nothing is due and adds
up their reports, `cancel` ends them without claiming anything. Used as a context manager, leaving
it ends whatever is still running (told to stop, then terminated if it does not). `digest run` and
`digest send` start them before planning, so they warm up on the core planning leaves idle.

They never outlive their parent: each watches its parent's sentinel (a pipe that closes when the
parent process ends, however it ends, SIGKILL included) and, once it closes, stops as a single
sender stops: the message in flight finishes, what it holds is handed back, it ends. They never
see a Ctrl-C (SIGINT is blocked while they start, and ignored in them): the parent hears it and
tells them all at once; SIGTERM to one stops that one the same way.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from multiprocessing.connection import wait as wait_for_any

from digest import metrics
from digest.config import Settings
from digest.delivery.loop import send_here
from digest.delivery.recording import SendReport
from digest.mail.ratelimit import RateLimiter
from digest.render import renderer_for
from digest.store.db import Database
from digest.throughput import few_collections, own_core


class SendingProcesses:
    """The `workers` processes of one send, started at once; each waits to be told to send."""

    def __init__(self, db: Database, settings: Settings, workers: int, *, now: datetime | None = None,
                 email: str | None = None, batch: int = 200):
        window = settings.mail.smtp.window_limit
        workers = min(workers, window) if window else workers  # every share of the window keeps at least one
        # a fresh interpreter: no engine, thread or lock is inherited
        ctx = multiprocessing.get_context("spawn")
        self.settings = settings
        # `go`, `halt` and the counts (one slot per process) have no lock: a process may end at any moment
        # (os._exit, SIGKILL), and a lock it held would stay held for every other one
        self.go, self.halt, self.count, self.reports = (ctx.RawValue("b", 0), ctx.RawValue("b", 0),
                                                        ctx.RawArray("q", workers), ctx.Queue())
        kwargs = dict(now=now, email=email, batch=batch, share=workers,
                      level=logging.getLogger().getEffectiveLevel())
        self.procs = [ctx.Process(target=_worker_process,
                                  args=(db.url, settings, {**kwargs, "slot": i}, self.go, self.halt,
                                        self.count, self.reports),
                                  name=f"digest-send-worker-{i}") for i in range(workers)]
        self._done = False
        _live.add(self)
        # a Ctrl-C in the terminal goes to the whole process group: the processes must not hear it, even
        # while they import (they inherit the blocked signal; the parent gets it once unblocked)
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            for proc in self.procs:
                proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def __enter__(self) -> SendingProcesses:
        return self

    def __exit__(self, *exc) -> None:
        self.end()

    def cancel(self) -> None:
        """Nothing to send after all: the processes end without claiming anything."""
        self._done = True
        self.end()

    def end(self, grace: float = 30.0) -> None:
        """Stop every process (one still starting or waiting ends at once; one sending finishes its
        message in flight and hands back the rest), wait up to `grace` seconds, then kill what is left."""
        self.tell_to_stop()
        deadline = time.monotonic() + grace
        for proc in self.procs:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                log.warning("sending process %s did not stop in %g s: killing it (what it holds is "
                            "resumed once its leases run out)", proc.pid, grace)
                proc.kill()
                proc.join()
        _live.discard(self)

    def tell_to_stop(self) -> None:
        """Stop every process now, without waiting (a signal handler may call it)."""
        self.halt.value = 1
        for proc in self.procs:
            if proc.exitcode is None:
                proc.terminate()  # SIGTERM: what `halt` does, sooner (a process still importing ends)

    def run(self, progress: Callable[[int], None] | None = None,
            stop: threading.Event | None = None) -> SendReport:
        """Let them send until nothing is due; their reports added up."""
        self._done = True
        started = time.perf_counter()
        self.go.value = 1
        got = self._wait(progress, stop)
        total = SendReport()
        for r in got:
            total.add(r)
        for proc in self.procs:
            if proc.exitcode != 0 and not self.halt.value:  # told to stop, one that had not begun just ends
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
            sent = sum(self.count)
            if progress is not None and sent > told:
                progress(sent - told)
                told = sent

        try:
            while any(proc.is_alive() for proc in self.procs) or not self.reports.empty():
                if stop is not None and stop.is_set() and not self.halt.value:
                    self.tell_to_stop()
                while not self.reports.empty():
                    got.append(SendReport(**self.reports.get()))
                self.procs[0].join(timeout=0.1)
                tell()
        except BaseException:
            self.end()  # every process stops as a single sender would, and gives back what it holds
            raise
        for proc in self.procs:
            proc.join()
        _live.discard(self)
        tell()
        return got


_live: weakref.WeakSet[SendingProcesses] = weakref.WeakSet()  # the sending processes this one runs
log = logging.getLogger("digest.sender")


def stop_all() -> None:
    """Tell every sending process this process started to stop (a second signal: the parent quits at
    once, they hand back what they hold and end on their own)."""
    for group in list(_live):
        group.tell_to_stop()


def send_in_processes(db: Database, settings: Settings, workers: int, *, now: datetime | None = None,
                      email: str | None = None, batch: int = 200,
                      progress: Callable[[int], None] | None = None,
                      stop: threading.Event | None = None) -> SendReport:
    """`send` in `workers` processes at once; `stop` reaches every process; their reports added up."""
    return SendingProcesses(db, settings, workers, now=now, email=email, batch=batch).run(progress, stop)


def _worker_process(url: str, settings: Settings, kwargs: dict, go, halt, count, reports) -> None:
    """One sending process of `SendingProcesses`: ready (templates compiled), it waits for `go`.

    Three things stop it, each heard by a thread of its own (a Python signal handler would wait for the
    main thread, which may be blocked joining the sending threads): the parent's `halt`, SIGTERM (through
    the wakeup fd, whichever thread the kernel gave it to: numpy's BLAS threads are there from the
    start), and the parent's end (its sentinel closes). Before it begins sending it ends at once (it
    holds nothing); once sending, it stops as a single sender does: the message in flight finishes, the
    rest goes back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent hears Ctrl-C and tells every process at once
    signal.signal(signal.SIGTERM, lambda *_: None)  # not fatal in any thread; heard below
    heard, wakeup = os.pipe()
    os.set_blocking(wakeup, False)
    signal.set_wakeup_fd(wakeup)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked while it started; ignored now
    logging.basicConfig(level=kwargs.pop("level"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop, state = threading.Event(), threading.Lock()
    sending = False

    def stop_after(wait: Callable[[], object]) -> None:
        wait()
        with state:
            if not sending:
                os._exit(0)  # nothing claimed yet: nothing to hand back
            stop.set()

    def flag(value) -> Callable[[], None]:
        return lambda: _until(lambda: value.value)

    parent = multiprocessing.parent_process()
    def terminated() -> None:
        while signal.SIGTERM not in os.read(heard, 16):
            pass

    for wait in (flag(halt), terminated,
                 lambda: wait_for_any([parent.sentinel]) if parent is not None else threading.Event().wait()):
        threading.Thread(target=stop_after, args=(wait,), daemon=True).start()
    renderer_for(settings.render.templates_dir)
    flag(go)()
    with state:
        sending = True  # from here on a stop hands back what it holds
        if stop.is_set():
            return

    slot = kwargs.pop("slot")
    own_core(os.getppid() + slot)  # before its SMTP threads start: they keep to it too

    def counted(n: int) -> None:
        count[slot] += n  # this process's own slot: no other writer

    share = kwargs.pop("share")
    db = Database(url)
    try:
        with few_collections():
            report = send_here(db, settings, stop=stop, progress=counted,
                               limiter=RateLimiter.from_settings(settings, share), **kwargs)
    finally:
        db.dispose()
    if parent is None or parent.is_alive():  # nobody would read it: its leases are handed back already
        reports.put(asdict(report))


def _until(condition: Callable[[], object], every: float = 0.05) -> None:
    while not condition():
        time.sleep(every)

"""Speed work: the ingest's term analysis (`term_batch.pack_batch`) on the machine's other cores.

Contract: `Analysis.submit(docs).result()` is `term_batch.pack_batch(docs)`, whichever process ran
it. A small first batch runs here (a day's listings: no process to start); from the second on, or a
first of LARGE papers (a large ingest), up to `WORKERS` processes start and analyse batches while
this process reads and writes the store. They are started clean ("spawn": no
copy of this process's database connections), ignore Ctrl-C and SIGTERM from their first instruction
(the parent hears them, and lets the batches in flight finish: `digest ingest` stores what it read),
and end with the `with` block that made them, or with their parent, however it ends (a second signal's
exit at once, SIGKILL): each watches its parent's sentinel, as the sending processes do; they hold
nothing a store needs (terms they were analysing are made again by the next planning run).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing.connection import wait

from digest.ranking.term_batch import pack_batch

WORKERS = min(os.cpu_count() or 1, 4)  # processes for a large ingest (none on one core)
LARGE = 1000  # a first batch this big is a large ingest's: it goes to the workers too


QUIET = {signal.SIGINT, signal.SIGTERM}


def _quiet() -> None:
    """A worker's first call: the signals it was started with blocked (see `Analysis.submit`) are
    ignored from now on, then let through (so one sent while it started never interrupts it); and it
    ends when its parent does (a pool's workers wait on a queue whose writing end they hold themselves,
    so a parent gone without shutting the pool down would leave them waiting for ever)."""
    for sig in QUIET:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, QUIET)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_end_with, args=(parent.sentinel,), daemon=True).start()


def _end_with(sentinel: int) -> None:
    wait([sentinel])
    os._exit(0)


class Analysis:
    """Where batches are analysed: here for a small first one, then in worker processes."""

    def __init__(self, workers: int = WORKERS) -> None:
        self.workers = workers if workers > 1 else 0
        self.pool: ProcessPoolExecutor | None = None
        self.batches = 0

    @property
    def ahead(self) -> int:
        """Batches worth having in flight at once (each holds its texts and records)."""
        return 2 * self.workers if self.pool else 1

    def submit(self, docs: Sequence[tuple[str, str]]) -> Future[list[bytes]]:
        self.batches += 1
        if (self.batches > 1 or len(docs) >= LARGE) and self.workers and self.pool is None:
            self.pool = ProcessPoolExecutor(self.workers, multiprocessing.get_context("spawn"),
                                            initializer=_quiet)
        if self.pool is not None:  # may start a worker: it inherits the blocked signals until `_quiet`
            held = signal.pthread_sigmask(signal.SIG_BLOCK, QUIET)
            try:
                return self.pool.submit(pack_batch, list(docs))
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
        done: Future[list[bytes]] = Future()
        done.set_result(pack_batch(docs))
        return done

    def __enter__(self) -> Analysis:
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

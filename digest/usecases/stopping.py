"""Stopping on SIGINT and SIGTERM, for every command that holds leases (`digest send`, `digest run`,
the scheduler).

The first signal asks the work to stop: `Stop` is set, and every long step looks at it (planning
between batches, the send loop before each message, the sending processes through their parent).
The messages in flight finish, everything else claimed is handed back to the ledger, the sending
processes end, and the command exits 128 + the signal's number (130, 143). A second signal ends the
process at once: what this process still holds is handed back (bounded: a database that does not
answer within a moment is left to the leases), its sending processes are told to stop (they give
back their own, and end: they never outlive their parent), and it exits, without a traceback.
"""

from __future__ import annotations

import gc
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from digest.delivery import loop, processes

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stop(threading.Event):
    """Set by the first signal; `signum` is the signal that set it (None: not stopped by a signal)."""

    signum: int | None = None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "stop"

    @property
    def exit_code(self) -> int:
        return 128 + self.signum if self.signum else 1


def _say(text: str) -> None:
    """One line on stderr, safe inside a signal handler (no buffered stream that may be mid-write)."""
    try:
        os.write(2, f"{text}\n".encode())
    except OSError:
        pass


def quit_now(signum: int) -> None:
    """The second signal: hand back what this process holds, tell the sending processes to stop, exit."""
    processes.stop_all()
    loop.give_back_now(timeout=2.0)
    _say(f"{signal.Signals(signum).name} again: stopped at once")
    os._exit(128 + signum)


@contextmanager
def on_signals(stop: Stop | None = None, *, announce: bool = True,
               doing: str = "finishing the messages in flight and handing back the rest") -> Iterator[Stop]:
    """While the block runs, SIGINT and SIGTERM set `stop` (the first) or quit at once (the second).
    The first one says on stderr what the work does now (`doing`). Outside the main thread (where
    handlers cannot be set) it only hands out the event."""
    stop = stop if stop is not None else Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, _frame: object) -> None:
        if stop.is_set():
            quit_now(signum)
        stop.signum = signum
        stop.set()
        if announce:
            _say(f"{signal.Signals(signum).name}: {doing} (again to stop at once)")

    old = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield stop
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def leave_quickly() -> None:
    """The work is done and handed back: let the interpreter end without walking the whole heap once
    more (its last collection took seconds on a loaded machine, after a stop that took a fraction of
    one). Objects are only moved out of the collector's sight; nothing is skipped that must run."""
    gc.freeze()

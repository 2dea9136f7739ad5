"""Work the web pages hand over after answering: one thread drains a bounded queue, item by item.

A `Worker` starts its daemon thread at the first `offer` and never makes the caller wait: a full
queue refuses the item (`offer` returns False) and the caller says so in its own words. `handle`
sees one item at a time, in order; whatever it raises is logged and the next item goes on. `close`
handles what is queued, then stops the thread; `stop` gives back what is still queued and stops the
thread once the item in hand is done; `join` waits for what is queued so far (tests).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Worker(Generic[T]):
    def __init__(self, name: str, handle: Callable[[T], object], maxsize: int, log: logging.Logger):
        self.name, self.handle, self.log = name, handle, log
        self._queue: queue.Queue[T | None] = queue.Queue(maxsize)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def offer(self, item: T) -> bool:
        """Queue `item` for the thread; False (nothing queued) when the queue is full. Never waits."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            return False
        return True

    def join(self) -> None:
        """Wait until every item queued so far is handled."""
        self._queue.join()

    def close(self) -> None:
        """Handle what is queued, then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def stop(self) -> list[T]:
        """Take back the items still queued (not handled), let the one in hand end, stop the thread."""
        dropped = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            self._queue.task_done()
            if item is not None:
                dropped.append(item)
        self.close()
        return dropped

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self.handle(item)
            except Exception:  # noqa: BLE001 - one item failing never stops the next
                self.log.exception("%s: an item failed", self.name)
            finally:
                self._queue.task_done()
        self._queue.task_done()

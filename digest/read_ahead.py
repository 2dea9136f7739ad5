"""Speed work: an iterator run in a thread a chunk ahead of its reader, so that reading (SQLite,
unpacking records) overlaps with what the reader does with numpy (sorts and sums release the GIL): a
planning run at 200,000 papers uses its second core for the index's records (usecases.planning).

Contract: `read_ahead(it)` yields exactly what `it` yields, in order; an exception `it` raises is
raised to the reader at the same point; at most `chunks` chunks of `size` items wait beyond the one
being read (memory stays bounded); a reader that stops early (or fails) stops the thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


def read_ahead(items: Iterable[T], size: int = 1024, chunks: int = 2) -> Iterator[T]:
    q: queue.Queue = queue.Queue(maxsize=chunks)
    stop = threading.Event()

    def put(x) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        chunk: list = []
        try:
            for x in items:
                chunk.append(x)
                if len(chunk) == size:
                    if not put(chunk):
                        return
                    chunk = []
            if put(chunk):
                put(_END)
        except BaseException as err:  # noqa: BLE001 - handed to the reader (after the items before it)
            if put(chunk):
                put(err)

    thread = threading.Thread(target=run, name="read-ahead", daemon=True)
    thread.start()
    try:
        while (got := q.get()) is not _END:
            if isinstance(got, BaseException):
                raise got
            yield from got
    finally:
        stop.set()
        thread.join()

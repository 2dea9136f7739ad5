"""The sender's group commit: outcomes of many sending threads in few transactions, each thread
going on only once its own outcome is written."""

from __future__ import annotations

import threading
import time

import pytest

from digest.delivery.recording import GroupCommit


def test_threads_arriving_together_share_a_write_and_each_waits_for_its_own():
    written: list[int] = []
    batches: list[list[int]] = []
    gate, entered = threading.Event(), threading.Event()

    def write(batch):
        if not batches:
            entered.set()
            gate.wait(5)  # the first write is slow: the others pile up behind it
        batches.append(list(batch))
        written.extend(batch)

    commit = GroupCommit(write)
    seen_after: dict[int, list[int]] = {}

    def worker(i: int) -> None:
        commit.record(i)
        seen_after[i] = list(written)

    first = threading.Thread(target=worker, args=(0,))
    first.start()
    assert entered.wait(5)
    rest = [threading.Thread(target=worker, args=(i,)) for i in range(1, 9)]
    for t in rest:
        t.start()
    deadline = time.monotonic() + 5
    while len(commit._waiting) < 8 and time.monotonic() < deadline:  # all eight queued behind the write
        time.sleep(0.005)
    gate.set()
    for t in [first, *rest]:
        t.join(5)
    assert sorted(written) == list(range(9))
    assert batches[0] == [0] and len(batches) == 2  # the eight that waited went in one write
    assert all(i in seen_after[i] for i in range(9))  # nobody returned before its item was written


def test_a_failed_write_fails_its_items_and_every_later_one():
    calls = []

    def write(batch):
        calls.append(batch)
        raise RuntimeError("database is gone")

    commit = GroupCommit(write)
    with pytest.raises(RuntimeError, match="database is gone"):
        commit.record("a")
    with pytest.raises(RuntimeError, match="database is gone"):
        commit.record("b")
    assert calls == [["a"]]

"""digest.background.Worker: one thread drains a bounded queue; the caller never waits."""

import logging
import threading

from digest.background import Worker

log = logging.getLogger("test.background")


def gated():
    """A handler that holds each item until the gate opens: (handle, gate, started, seen)."""
    gate, started, seen = threading.Event(), threading.Event(), []

    def handle(item):
        started.set()
        gate.wait(10)
        seen.append(item)

    return handle, gate, started, seen


def test_items_are_handled_in_order_and_a_failure_does_not_stop_the_next(caplog):
    seen = []

    def handle(item):
        if item == 2:
            raise ValueError("two is bad")
        seen.append((item, threading.current_thread().name))

    worker = Worker("numbers", handle, 10, log)
    assert all(worker.offer(i) for i in range(5))
    worker.close()
    assert [i for i, _ in seen] == [0, 1, 3, 4]
    assert {name for _, name in seen} == {"numbers"}  # handled on the worker's own thread
    assert any("numbers: an item failed" in r.message and r.exc_info for r in caplog.records)


def test_a_full_queue_refuses_without_waiting_and_close_handles_what_is_queued():
    handle, gate, started, seen = gated()
    worker = Worker("slow", handle, 2, log)
    assert worker.offer("first")  # taken by the thread, which then waits at the gate
    assert started.wait(10)
    assert worker.offer("second") and worker.offer("third")  # the queue holds two
    assert not worker.offer("fourth")  # full: refused at once
    assert worker.waiting == 2
    gate.set()
    worker.close()
    assert seen == ["first", "second", "third"]
    worker.close()  # a second close is harmless


def test_join_waits_for_what_is_queued_and_the_worker_starts_again_after_close():
    seen = []
    worker = Worker("again", seen.append, 5, log)
    worker.offer(1)
    worker.join()
    assert seen == [1]
    worker.close()
    worker.offer(2)  # a new thread
    worker.close()
    assert seen == [1, 2]


def test_stop_gives_back_what_is_queued_and_lets_the_item_in_hand_end():
    handle, gate, started, seen = gated()
    worker = Worker("stopping", handle, 5, log)
    worker.offer("in hand")
    assert started.wait(10)
    worker.offer("a")
    worker.offer("b")
    threading.Timer(0.2, gate.set).start()
    assert worker.stop() == ["a", "b"]
    assert seen == ["in hand"]

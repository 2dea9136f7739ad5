"""read_ahead yields what its iterator yields, raises what it raises, and stops its thread."""

from __future__ import annotations

import threading

import pytest

from digest.read_ahead import read_ahead


def test_the_same_items_in_order_across_chunks():
    assert list(read_ahead(iter(range(10_007)), size=100)) == list(range(10_007))
    assert list(read_ahead([])) == []


def test_an_error_is_raised_to_the_reader_after_the_items_before_it():
    def failing():
        yield from range(5)
        raise ValueError("broken record")

    got = []
    with pytest.raises(ValueError, match="broken record"):
        for x in read_ahead(failing(), size=2):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]


def test_a_reader_that_stops_early_stops_the_thread():
    produced = []

    def endless():
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    it = read_ahead(endless(), size=10, chunks=1)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()
    assert not any(t.name == "read-ahead" for t in threading.enumerate())
    assert len(produced) <= 40  # bounded: a chunk read, one waiting, one being made

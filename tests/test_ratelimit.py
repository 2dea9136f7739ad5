"""The one rate limiter: keyed sliding windows and a token bucket, blocking `acquire` and non-blocking `hit`.

(The sending pace through `acquire()` is also tested in test_mail_transport.py and test_delivery.py.)
"""

from __future__ import annotations

import pytest

from digest.mail.ratelimit import RateLimiter
from tests.test_mail_transport import FakeClock


def test_hit_window_slides_per_key_and_keys_stay_bounded():
    now = [0.0]
    limiter = RateLimiter(window_limit=2, window_seconds=60, clock=lambda: now[0], max_keys=3)
    assert limiter.hit("a") and limiter.hit("a") and not limiter.hit("a")
    assert limiter.hit("b")  # another key has its own window
    now[0] = 61
    assert limiter.hit("a")
    for k in "cdefg":  # many keys: memory stays bounded
        limiter.hit(k)
    assert limiter.key_count <= 3


def test_a_refused_hit_is_not_counted():
    now = [0.0]
    limiter = RateLimiter(window_limit=1, window_seconds=10, clock=lambda: now[0])
    assert limiter.hit("a")
    for t in (2.0, 5.0, 9.0):
        now[0] = t
        assert not limiter.hit("a")
    now[0] = 10.0  # ten seconds after the one counted hit, not after the refused ones
    assert limiter.hit("a")


def test_unlimited_hit_always_passes_and_remembers_nothing():
    limiter = RateLimiter(clock=lambda: pytest.fail("an unlimited limiter reads no clock"))
    assert all(limiter.hit("a") for _ in range(1000)) and limiter.key_count == 0


def test_hit_and_acquire_share_one_state():
    clock = FakeClock()
    limiter = RateLimiter(rate=2, window_limit=3, window_seconds=60, clock=clock.now, sleep=clock.sleep)
    assert limiter.hit("") and limiter.hit("")  # the two-token burst
    assert not limiter.hit("")  # the bucket is empty: hit says no, acquire waits
    limiter.acquire()
    assert clock.t == pytest.approx(0.5)
    assert not limiter.hit("")  # three in the window now
    limiter.acquire()
    assert clock.t == pytest.approx(60.0)  # the window slid past the first

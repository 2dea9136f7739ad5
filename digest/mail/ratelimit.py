"""Rate limits kept in this process's memory: the sending threads' pace, and the web app's per-IP and
per-address caps on subscribe requests.

One state machine per key, with two optional limits:

- `window_limit` per `window_seconds`: at most that many events in any sliding window, the shape of
  a provider's hourly or daily cap (or of "3 emails per address a day").
- `rate`: events per second, a token bucket that holds one second's worth (so short bursts pass), as
  listmonk has it for sending.

`acquire()` waits until the key may have one more event and counts it; `hit(key)` counts it if it may
have one now, and otherwise says no (and counts nothing). With neither limit set, both return at
once: no lock, no clock, no sleep. The number of keys kept is bounded (`max_keys`).

`digest serve` is one process, so the web limits are exact there; behind several processes each
keeps its own count (the limit then applies per process).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from digest.config import Settings

_EPSILON = 1e-9  # float rounding must neither leave a zero wait nor keep an expired event


@dataclass
class _Key:
    """The state of one key: its token bucket and the times of its events in the current window."""

    tokens: float
    last: float
    events: deque[float] = field(default_factory=deque)


class RateLimiter:
    def __init__(self, *, rate: float = 0.0, window_limit: int = 0, window_seconds: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 max_keys: int = 100_000):
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.window_limit = window_limit
        self.window_seconds = window_seconds
        self.clock, self.sleep, self.max_keys = clock, sleep, max_keys
        self.unlimited = rate <= 0 and window_limit <= 0
        self._keys: dict[str, _Key] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, share: int = 1) -> RateLimiter:
        """The sending limits of `[mail.smtp]`; with `share` > 1, one of that many equal shares (each
        sending process of a run takes one, so together they keep the limits)."""
        s = settings.mail.smtp
        return cls(rate=s.rate_limit / share, window_limit=s.window_limit // share,
                   window_seconds=s.window_seconds)

    @property
    def key_count(self) -> int:
        """How many keys are remembered (at most `max_keys`)."""
        return len(self._keys)

    def acquire(self, key: str = "") -> None:
        """Wait until `key` may have one more event, and count it."""
        if self.unlimited:
            return
        while (wait := self._take(key)) > 0:
            self.sleep(wait)

    def hit(self, key: str) -> bool:
        """Count an event for `key` if it may have one now; False (and nothing counted) if not."""
        return self.unlimited or self._take(key) == 0

    def _take(self, key: str) -> float:
        """Count an event for `key` and return 0, or return how long to wait before asking again."""
        with self._lock:
            now = self.clock()
            state = self._keys.get(key)
            if state is None:
                if len(self._keys) >= self.max_keys:
                    self._prune(now)
                state = self._keys[key] = _Key(tokens=self.capacity, last=now)
            wait = self._wait(state, now)
            if wait > 0:
                return wait
            if self.rate > 0:
                state.tokens = max(0.0, state.tokens - 1)
            if self.window_limit > 0:
                state.events.append(now)
            return 0.0

    def _wait(self, state: _Key, now: float) -> float:
        """Bring `state` up to `now`; how long until it may have one more event (0: now)."""
        wait = 0.0
        if self.rate > 0:
            state.tokens = min(self.capacity, state.tokens + (now - state.last) * self.rate)
            state.last = now
            if state.tokens < 1 - _EPSILON:
                wait = (1 - state.tokens) / self.rate
        if self.window_limit > 0:
            events = state.events
            while events and events[0] + self.window_seconds <= now + _EPSILON:
                events.popleft()
            if len(events) >= self.window_limit:
                wait = max(wait, events[0] + self.window_seconds - now)
        return wait

    def _idle(self, state: _Key, now: float) -> bool:
        """True when forgetting the key changes nothing: its window is empty and its bucket full again."""
        window_over = not state.events or state.events[-1] + self.window_seconds <= now + _EPSILON
        bucket_full = self.rate <= 0 or state.tokens + (now
                                                        - state.last) * self.rate >= self.capacity - _EPSILON
        return window_over and bucket_full

    def _prune(self, now: float) -> None:
        for key in [k for k, state in self._keys.items() if self._idle(state, now)]:
            del self._keys[key]
        while len(self._keys) >= self.max_keys:  # still full of live keys: forget the oldest
            del self._keys[next(iter(self._keys))]

"""Sending rate limits, shared by the sending threads of one process (as listmonk has them).

- `rate`: messages per second, a token bucket that holds one second's worth (so short bursts pass).
- `window_limit` per `window_seconds`: at most that many messages in any sliding window, the shape of
  a provider's hourly or daily cap.

With neither set, `acquire()` returns at once: no lock, no clock, no sleep.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from digest.config import Settings


class RateLimiter:
    def __init__(self, rate: float = 0.0, window_limit: int = 0, window_seconds: float = 3600.0, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.window_limit = window_limit
        self.window_seconds = window_seconds
        self.clock, self.sleep = clock, sleep
        self.unlimited = rate <= 0 and window_limit <= 0
        self._tokens = self.capacity
        self._last = clock()
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        s = settings.mail.smtp
        return cls(s.rate_limit, s.window_limit, s.window_seconds)

    def acquire(self) -> None:
        """Wait until one more message may go, and count it."""
        if self.unlimited:
            return
        while (wait := self._take()) > 0:
            self.sleep(wait)

    def _take(self) -> float:
        """Take a slot and return 0, or return how long to wait before asking again."""
        with self._lock:
            now = self.clock()
            wait = 0.0
            if self.rate > 0:
                self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens < 1 - 1e-9:  # (a tolerance: float rounding must not leave a zero wait)
                    wait = (1 - self._tokens) / self.rate
            if self.window_limit > 0:
                while self._sent and self._sent[0] + self.window_seconds <= now + 1e-9:
                    self._sent.popleft()
                if len(self._sent) >= self.window_limit:
                    wait = max(wait, self._sent[0] + self.window_seconds - now)
            if wait > 0:
                return wait
            if self.rate > 0:
                self._tokens = max(0.0, self._tokens - 1)
            if self.window_limit > 0:
                self._sent.append(now)
            return 0.0

"""The circuit breaker: a run stops once the peer a channel shares across recipients (the SMTP relay)
keeps failing, instead of spending every delivery on it.

An outcome is the peer's when the channel says so (digest.delivery.channel): `ChannelRefused` (the
relay refused for a reason of its own, or stalled before the message was out), or a `Retry` or
`RecipientFailed` marked `peer` (a stall or a dropped connection once the message was out; a message
refused as too big). `LIMIT` of them in a row on one channel, with nothing sent between, stop the
run: what is not sent yet goes back unspent, and the run's errors carry one line with the peer's own
reply. Whatever the peer did short of that is summed up in one line per kind (`lines`), so `digest
send` exits non-zero whenever the relay refused something the admin has to see to.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from digest.delivery.channel import ChannelRefused, Outcome, RecipientFailed, Retry

LIMIT = 3  # the peer's failures in a row that stop a run


@dataclass
class _Kind:
    count: int = 0
    last: str = ""


@dataclass
class Breaker:
    limit: int = LIMIT
    tripped: str | None = None  # the line the run stopped with
    _streak: dict[str, int] = field(default_factory=dict)
    _kinds: dict[str, _Kind] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, channel: str, result: Outcome) -> str | None:
        """Count one outcome on `channel`; the line to stop the run with when it is the `limit`-th
        failure of the peer in a row (only the first time), else None."""
        kind = _kind(result)
        with self._lock:
            if kind is None:
                self._streak[channel] = 0
                return None
            assert isinstance(result, ChannelRefused | Retry | RecipientFailed)
            seen = self._kinds.setdefault(kind, _Kind())
            seen.count += 1
            seen.last = _one_line(result.error)
            streak = self._streak[channel] = self._streak.get(channel, 0) + 1
            if streak < self.limit or self.tripped is not None:
                return None
            self.tripped = (f"the {channel} relay failed {streak} times in a row, so sending stopped and "
                            f"the rest is given back (nothing was counted against the recipients); "
                            f"it said: {seen.last}")
            return self.tripped

    def lines(self) -> list[str]:
        """One line per kind of the peer's failure this run, with its last reply (none when it tripped:
        its line says it)."""
        if self.tripped is not None:
            return []
        return [_SAYS[kind].format(n=k.count, s="" if k.count == 1 else "s") + k.last
                for kind, k in sorted(self._kinds.items())]


_SAYS = {
    "refused": "the relay refused {n} message{s} for a reason of its own (given back unsent, nothing "
               "counted against the recipients): ",
    "message": "the relay refused {n} message{s} for good as too big or unacceptable (failed, not "
               "bounces): ",
    "lost": "the relay stalled or dropped the connection after {n} message{s} went out (tried again "
            "later; it may hold them): ",
}


def _kind(result: Outcome) -> str | None:
    if isinstance(result, ChannelRefused):
        return "refused"
    if isinstance(result, RecipientFailed) and result.peer:
        return "message"
    if isinstance(result, Retry) and result.peer:
        return "lost"
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())

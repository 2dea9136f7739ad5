"""Every URL a digest or a page puts in front of a subscriber, each carrying a signed token."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from digest.subscriptions import tokens


@dataclass(frozen=True)
class Links:
    base_url: str
    secret: str

    def _url(self, path: str, purpose: str, subscriber_id: int, **extra) -> str:
        return f"{self.base_url}/{path}/{tokens.make(self.secret, purpose, subscriber_id, **extra)}"

    def confirm(self, subscriber_id: int, now: datetime) -> str:
        """Carries when it was made (ms), so an unsubscribe voids confirmation links sent before it."""
        return self._url("confirm", "confirm", subscriber_id, at=int(now.timestamp() * 1000))

    def preferences(self, subscriber_id: int) -> str:
        return self._url("preferences", "manage", subscriber_id)

    def unsubscribe(self, subscriber_id: int) -> str:
        return self._url("unsubscribe", "unsubscribe", subscriber_id)

    def archive(self, subscriber_id: int, delivery_id: int) -> str:
        return self._url("archive", "archive", subscriber_id, d=delivery_id)

    def feedback(self, subscriber_id: int, paper_id: int, signal: int) -> str:
        return self.feedback_links(subscriber_id)(paper_id, signal)

    def feedback_links(self, subscriber_id: int) -> Callable[[int, int], str]:
        """"More / less like this" links for one digest: one signed token for the subscriber, the paper
        and the signal in the query (a digest shows two per paper; signing each cost more than the
        rest of its rendering). The token lets its holder rate papers for themselves only."""
        base = self._url("feedback", "feedback", subscriber_id)
        return lambda paper_id, signal: f"{base}?{urlencode({'p': paper_id, 'v': signal})}"

"""Every URL a digest or a page puts in front of a subscriber, each carrying a signed token."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from digest.config import Settings
from digest.subscriptions import tokens


@dataclass(frozen=True)
class Links:
    """Made for one batch of messages (or one page): a URL asked for twice in it (a digest's unsubscribe
    link is in its header and its footer) is signed once."""

    base_url: str
    secret: str
    _made: dict = field(default_factory=dict, compare=False, repr=False)

    def _url(self, path: str, purpose: str, subscriber_id: int, **extra) -> str:
        key = (path, purpose, subscriber_id, *extra.items())
        url = self._made.get(key)
        if url is None:
            token = tokens.make(self.secret, purpose, subscriber_id, **extra)
            url = self._made[key] = f"{self.base_url}/{path}/{token}"
        return url

    def confirm(self, subscriber_id: int, now: datetime) -> str:
        """Carries when it was made (ms), so an unsubscribe voids confirmation links sent before it."""
        return self._url("confirm", "confirm", subscriber_id, at=int(now.timestamp() * 1000))

    def preferences(self, subscriber_id: int) -> str:
        return self._url("preferences", "manage", subscriber_id)

    def unsubscribe(self, subscriber_id: int) -> str:
        return self._url("unsubscribe", "unsubscribe", subscriber_id)

    def feed(self, subscriber_id: int) -> str:
        """The subscriber's private Atom feed of the papers they were sent."""
        return self._url("feed", "feed", subscriber_id) + ".atom"

    def archive(self, subscriber_id: int, delivery_id: int) -> str:
        return self._url("archive", "archive", subscriber_id, d=delivery_id)

    def feedback(self, subscriber_id: int, paper_id: int, signal: int) -> str:
        return self.feedback_links(subscriber_id)(paper_id, signal)

    def feedback_links(self, subscriber_id: int) -> Callable[[int, int], str]:
        """"More / less like this" links for one digest: one signed token for the subscriber, the paper
        and the signal in the query (a digest shows two per paper; signing each cost more than the
        rest of its rendering). The token lets its holder rate papers for themselves only."""
        base = self._url("feedback", "feedback", subscriber_id)
        return lambda paper_id, signal: f"{base}?p={int(paper_id)}&v={int(signal)}"  # urlencode of two ints


def links_for(settings: Settings) -> Links:
    """The links of the configured site (`web.base_url`), signed with the configured secret: the one
    way every mail, page and feed makes them."""
    return Links(settings.web.base_url, settings.secret())


_WHOLE = re.compile(r"-?[0-9]{1,19}")  # ASCII digits only (int() also takes '٣', '1_0' and ' 7')


def feedback_target(payload: Mapping, query: Mapping[str, str]) -> tuple[int, int] | None:
    """(paper id, vote) of a feedback link: from its query (`?p=12&v=1`; the token is the subscriber's),
    or, in links mailed before, from the token itself; None unless both are what our links hold (the
    tokens' own field rule)."""
    if "p" in payload:
        p, v = payload.get("p"), payload.get("v")
    else:
        p, v = (int(x) if _WHOLE.fullmatch(x := query.get(k, "")) else None for k in ("p", "v"))
    return (p, v) if tokens.FIELDS["p"](p) and tokens.FIELDS["v"](v) else None

"""A team channel: the edition as a chat service's JSON, posted to its incoming webhook.

The payload is made from the same content as the email (the same picks, why-lines and signed links);
each kind (slack, discord, generic) is a subclass that says only how its JSON looks. The URL is the
subscriber's sealed address (digest.mail.webhook.Sealer), opened here and never logged. What a post's
errors mean, as outcomes: `TemporaryFailure` (429, 5xx, a timeout) is a `Retry` at what the server
asked (`Retry-After`) or the backoff; any other refusal is `RecipientFailed`. Neither is a bounce:
there is no mailbox to suppress, and a URL is no address.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Mapping
from datetime import datetime

from digest.delivery.channel import (
    Channel,
    Outcome,
    Outgoing,
    RecipientFailed,
    Retry,
    Sent,
    Setup,
    Unaddressable,
    retry_at,
)
from digest.delivery.channels.email import content as edition_content
from digest.delivery.channels.email import render
from digest.mail.transport import PermanentFailure, TemporaryFailure
from digest.mail.webhook import Sealer, WebhookError, WebhookTransport
from digest.records import Edition, Paper, Subscriber
from digest.render import DigestContent, Rendered
from digest.render.compose import Entries


class WebhookChannel(Channel):
    media = "json"
    sealed = True
    address = "webhook"

    def __init__(self, setup: Setup):
        super().__init__(setup)
        self.http = WebhookTransport(timeout=setup.settings.mail.webhook_timeout)
        self._sealer: Sealer | None = None

    @property
    def label(self) -> str:
        return f"webhook-{self.name}"

    @abstractmethod
    def payload(self, content: DigestContent, message_id: str) -> dict:
        """The service's JSON for one edition."""

    def data(self, sub: Subscriber, edition: Edition,
             papers: Mapping[int, Paper] | Entries) -> tuple[Rendered, bytes]:
        shown = edition_content(self.setup, sub, edition, papers)
        data = json.dumps(self.payload(shown, edition.message_id), ensure_ascii=False).encode("utf-8")
        return Rendered(subject=shown.subject, html="", text="", shown=len(shown.picks)), data

    def outgoing(self, sub: Subscriber, edition: Edition, papers: Mapping[int, Paper] | Entries,
                 now: datetime,
                 sealed: str | None = None) -> Outgoing:
        if self._sealer is None:
            self._sealer = Sealer(self.setup.secret)
        try:
            url = self._sealer.open(sealed)
        except WebhookError as err:  # stored before the door refused it, or sealed with another secret
            raise Unaddressable(str(err)) from None
        rendered, data = self.data(sub, edition, papers)
        assert edition.id is not None
        return Outgoing(edition.id, sub.id, url, rendered, data, edition.attempts, self.name,
                        message_id=edition.message_id)

    def preview(self, sub: Subscriber, edition: Edition, papers: Mapping[int, Paper] | Entries,
                now: datetime) -> tuple[Rendered, bytes]:
        """The email's look (html, text) and the payload, from the same content."""
        _, data = self.data(sub, edition, papers)
        return render(self.setup, sub, edition, papers), data

    def send(self, item: Outgoing) -> Outcome:
        try:
            self.http.send(item.data, "", item.recipient, key=item.message_id)
        except TemporaryFailure as err:
            return Retry(str(err)[:500], retry_at(self.setup.settings, item.attempts + 1, err.retry_after))
        except PermanentFailure as err:
            return RecipientFailed(str(err)[:500])
        return Sent()

    def close(self) -> None:
        self.http.close()

"""An inbox: the edition as a signed MIME message, handed to a mail transport (digest.mail.transport).

What a transport's errors mean, as outcomes: `TemporaryFailure` is a `Retry` (a soft bounce once the
tries run out, unless the connection was at fault: no code, or 421); `PermanentFailure` is
`RecipientFailed` with a bounce (hard, or soft for a full mailbox: `delivery.bounces.classify`);
`TransportUnavailable` is `ChannelFailed`. `smtp` and `outbox` are this channel over their transport.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from digest.config import Settings
from digest.delivery.channel import (
    Channel,
    ChannelFailed,
    Fault,
    Outcome,
    Outgoing,
    RecipientFailed,
    Retry,
    Sent,
    Setup,
    Unaddressable,
    retry_at,
)
from digest.mail.enhanced_status import classify
from digest.mail.message import Envelope, ascii_address, message_bytes, parse_address
from digest.mail.transport import PermanentFailure, TemporaryFailure, Transport, TransportUnavailable
from digest.records import Edition, Paper, Subscriber
from digest.render import Rendered
from digest.render.compose import Entries, edition_content


def content(setup: Setup, sub: Subscriber, edition: Edition, papers: Mapping[int, Paper] | Entries):
    """What one subscriber's edition shows, with their signed links (every channel renders this)."""
    digest = setup.settings.digest
    return edition_content(sub, edition, papers, setup.links, site_name=digest.site_name,
                           excerpt_chars=digest.excerpt_chars)


def render(setup: Setup, sub: Subscriber, edition: Edition,
           papers: Mapping[int, Paper] | Entries) -> Rendered:
    """Both parts of one subscriber's edition as the email shows them (sending, previews, the archive)."""
    return setup.renderer.render(content(setup, sub, edition, papers))


def sender_address(settings: Settings) -> str:
    """The envelope sender: the bare address of `mail.from_address`."""
    return parse_address(settings.mail.from_address).addr_spec


class MailChannel(Channel):
    """An edition as an email, sent through `transport` (made from the settings when not given)."""

    name = "email"

    def __init__(self, setup: Setup):
        super().__init__(setup)
        self.transport = setup.transport if setup.transport is not None else self.connect(setup.settings)
        self.sender = sender_address(setup.settings)

    @staticmethod
    def connect(settings: Settings) -> Transport:
        raise NotImplementedError

    @property
    def label(self) -> str:
        return getattr(self.transport, "name", type(self.transport).__name__)

    def outgoing(self, sub: Subscriber, edition: Edition, papers: Mapping[int, Paper] | Entries,
                 now: datetime,
                 sealed: str | None = None) -> Outgoing:
        try:
            recipient = ascii_address(edition.email)
        except ValueError as err:
            raise Unaddressable(str(err)) from None
        rendered, data = self.message(sub, edition, papers, now)
        assert edition.id is not None
        return Outgoing(edition.id, sub.id, recipient, rendered, data, edition.attempts, self.name,
                        message_id=edition.message_id)

    def message(self, sub: Subscriber, edition: Edition, papers: Mapping[int, Paper] | Entries,
                now: datetime) -> tuple[Rendered, bytes]:
        """The edition rendered, and the message exactly as it goes on the wire (signed when DKIM is on)."""
        setup, mail = self.setup, self.setup.settings.mail
        rendered = render(setup, sub, edition, papers)
        env = Envelope(from_address=mail.from_address, to_address=sub.email, to_name=sub.name,
                       subject=rendered.subject, message_id=edition.message_id, list_id=mail.list_id,
                       unsubscribe_url=setup.links.unsubscribe(sub.id),
                       unsubscribe_mailto=mail.unsubscribe_mailto,
                       reply_to=mail.reply_to, date=now)
        data = message_bytes(env, rendered.text, rendered.html, rendered.html_parts, rendered.text_parts)
        return rendered, setup.signer.sign(data) if setup.signer else data

    def preview(self, sub: Subscriber, edition: Edition, papers: Mapping[int, Paper] | Entries,
                now: datetime) -> tuple[Rendered, bytes]:
        return self.message(sub, edition, papers, now)

    def open(self) -> ChannelFailed | None:
        try:
            self.transport.open()
        except TransportUnavailable as err:
            return ChannelFailed(str(err))
        return None

    def send(self, item: Outgoing) -> Outcome:
        try:
            self.transport.send(item.data, self.sender, item.recipient)
        except TemporaryFailure as err:
            mine = err.code not in (None, 421)  # a connection problem is not the recipient's
            return Retry(str(err)[:500], retry_at(self.setup.settings, item.attempts + 1, err.retry_after),
                         Fault("soft", err.status) if mine else None)
        except PermanentFailure as err:
            return RecipientFailed(str(err)[:500], Fault(classify(err.status) or "hard", err.status))
        except TransportUnavailable as err:
            return ChannelFailed(str(err))
        return Sent()

    def close(self) -> None:
        self.transport.close()

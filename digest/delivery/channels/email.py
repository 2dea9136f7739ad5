"""An inbox: the edition as a signed MIME message, handed to a mail transport (digest.mail.transport).

What a transport's errors mean, as outcomes (`outcome_of`), decided by who the refusal is about
(digest.mail.enhanced_status.judge, from its stage and RFC 3463 code): about the recipient, a
`Retry` (4xx: a soft bounce once the tries run out) or a `RecipientFailed` with a bounce (hard, or
soft for a full mailbox); about the message (too big, its content) for good (5xx), a
`RecipientFailed` without one; about the relay, or about the message for now (4xx), `ChannelRefused`
(given back unspent). Without a reply, the connection lost or stalled before the message was out is
`ChannelRefused`, after it (the relay may hold it) a `Retry` that is nobody's bounce.
`TransportUnavailable` is `ChannelFailed`. `smtp` and `outbox` are this channel over their transport.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from digest.config import Settings
from digest.delivery.channel import (
    Channel,
    ChannelFailed,
    ChannelRefused,
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
from digest.mail.enhanced_status import END, MESSAGE, RECIPIENT
from digest.mail.message import Envelope, ascii_address, message_bytes, parse_address
from digest.mail.transport import (
    DeliveryError,
    PermanentFailure,
    SmtpTransport,
    TemporaryFailure,
    Transport,
    TransportUnavailable,
)
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
        return self._send(item, None)

    def send_after(self, item: Outgoing, ready: Callable[[], None]) -> Outcome:
        """Over SMTP the whole message goes meanwhile, all but the dot that ends it (a connection that
        ends without it leaves the relay nothing to deliver)."""
        if type(self.transport).send is not SmtpTransport.send:  # a transport of its own: in turn
            return super().send_after(item, ready)
        return self._send(item, ready)

    def _send(self, item: Outgoing, ready: Callable[[], None] | None) -> Outcome:
        try:
            if ready is None:
                self.transport.send(item.data, self.sender, item.recipient)
            else:
                self.transport.send(item.data, self.sender, item.recipient, before_end=ready)
        except (TemporaryFailure, PermanentFailure) as err:
            return outcome_of(err, self.setup.settings, item.attempts)
        except TransportUnavailable as err:
            return ChannelFailed(str(err))
        return Sent()

    def close(self) -> None:
        self.transport.close()


def outcome_of(err: DeliveryError, settings: Settings, attempts: int) -> Outcome:
    """What a message that did not go means (the module's docstring): the one place a mail refusal is
    booked against the recipient, the message or the relay. `attempts`: tries before this one."""
    error = str(err)[:500]
    verdict = err.verdict
    if verdict is None:  # no reply: the connection was lost or stalled (or the address cannot be sent)
        if isinstance(err, PermanentFailure):
            return RecipientFailed(error)
        if err.stage == END:  # the message was out: the relay may have it, so not again at once
            return Retry(error, retry_at(settings, attempts + 1, err.retry_after), peer=True)
        return ChannelRefused(error)
    if verdict.party == RECIPIENT:
        fault = Fault("soft" if verdict.temporary else verdict.bounce or "hard", err.status)
        if verdict.temporary:
            return Retry(error, retry_at(settings, attempts + 1, err.retry_after), fault)
        return RecipientFailed(error, fault)
    if verdict.party == MESSAGE and not verdict.temporary:
        return RecipientFailed(error, peer=True)
    return ChannelRefused(error)

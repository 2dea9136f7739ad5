"""The seam between the send loop and the ways a digest reaches someone: one `Channel` interface.

The send loop (digest.delivery.sender) sees the ledger and channels, nothing else: it never asks
whether a subscriber reads mail or a chat room. Each channel is one module in
`digest.delivery.channels`, registered there by name (email over SMTP, the outbox folder, each
webhook kind); a subscriber's `channel` column names the one that reaches them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar, Literal

from digest.config import Settings
from digest.mail.signing import DkimSigner
from digest.mail.transport import Transport
from digest.records import Edition, Paper, Subscriber, utcnow
from digest.render import Rendered, Renderer
from digest.render.compose import EditionLinks, Entries

# ------------------------------------------------------------------------------ the closed outcome set


@dataclass(frozen=True)
class Fault:
    """What a failure counts as against the recipient (a bounce of this `kind`, with the server's
    status code): only a reply about this recipient is one."""

    kind: Literal["hard", "soft"]
    status: str | None = None


@dataclass(frozen=True)
class Sent:
    """The peer took it."""


@dataclass(frozen=True)
class Retry:
    """Not now: try again at `at`. Once the delivery's tries are used up it fails, and counts against
    the recipient only if `fault` says so. `peer`: the channel's peer is at fault (a shared relay that
    stalled or dropped the connection once the message was out): it counts toward the circuit breaker
    (digest.delivery.breaker)."""

    error: str
    at: datetime
    fault: Fault | None = None
    peer: bool = False


@dataclass(frozen=True)
class RecipientFailed:
    """Failed for good; `fault` (None: nothing to suppress) is recorded as a bounce. `peer`: refused by
    the channel's shared peer for the message itself (too big, its content): nobody bounced, the admin
    is told, and it counts toward the circuit breaker."""

    error: str
    fault: Fault | None = None
    peer: bool = False


@dataclass(frozen=True)
class ChannelRefused:
    """The channel's peer refused this item for a reason of its own (the relay, the session, the
    sender, a relay-wide limit, a stall before the message was out): nothing was sent, and nothing
    counts against the recipient. The delivery goes back to the ledger unspent at the end of the run;
    the run goes on until the circuit breaker (digest.delivery.breaker) says the peer keeps refusing."""

    error: str


@dataclass(frozen=True)
class ChannelFailed:
    """Failed for the channel itself (server down, login or sender refused, the run stopping): nothing
    was sent, and nothing more can be now. The send loop stops and gives this delivery and every
    untried one back to the ledger, unspent."""

    error: str


Outcome = Sent | Retry | RecipientFailed | ChannelRefused | ChannelFailed


# ---------------------------------------------------------------------------------- what goes out


class Unaddressable(ValueError):
    """A recipient a channel cannot send to (an address the mailer cannot take, a sealed URL it cannot
    open), in one line: the delivery fails, nothing is sent."""


@dataclass
class Outgoing:
    """One subscriber's edition as its channel will send it."""

    delivery_id: int
    subscriber_id: int
    recipient: str  # an address, or a webhook's URL (a secret: never logged)
    rendered: Rendered
    data: bytes  # the finished message (signed when DKIM is configured), or a webhook's JSON payload
    attempts: int  # tries before this one
    channel: str  # the registry name of the channel that made it, and sends it
    held_until: datetime | None = None  # the sender's lease, as far as it knows; None: take it again
    message_id: str = ""


@dataclass(frozen=True)
class Setup:
    """What every channel of a run is made with."""

    settings: Settings
    links: EditionLinks
    renderer: Renderer
    signer: DkimSigner | None = None
    secret: str | tuple[str, ...] = ""  # opens sealed webhook URLs (several: the first seals, all open)
    transport: Transport | None = None  # the mail transport of a sending thread, when the caller gives one


def retry_at(settings: Settings, attempts: int, asked: float | None = None) -> datetime:
    """When try number `attempts` + 1 may go: what the peer asked for (HTTP `Retry-After`, seconds),
    else `backoff`."""
    mail = settings.mail
    wait = timedelta(seconds=asked) if asked is not None else backoff(attempts, mail.retry_backoff,
                                                                      mail.retry_max_backoff)
    return utcnow() + wait


def backoff(attempts: int, base: float = 300.0, cap: float = 21600.0) -> timedelta:
    """Wait before retry number `attempts`: base, 2 x base, 4 x base ... at most `cap` seconds."""
    return timedelta(seconds=min(base * 2 ** max(0, attempts - 1), cap))


# ---------------------------------------------------------------------------------------- the seam


class Channel(ABC):
    """One way a digest reaches a subscriber. The contract, all of it:

    - `outgoing(sub, edition, papers, now, sealed)` turns one subscriber's edition into an `Outgoing`:
      rendered, encoded, addressed (`sealed` is their stored, sealed address, when the channel keeps
      one). Pure: no I/O. A recipient it cannot address raises `Unaddressable`, one line that says
      why (the delivery fails for that recipient, nothing is sent).
    - `open()` makes the channel ready (connects, logs in); it returns None, or `ChannelFailed` when
      nothing can be sent through it now.
    - `send(item)` sends one item made by this kind of channel and returns exactly one `Outcome`:
      `Sent`, `Retry` (not now: when, and whether it counts against the recipient once tries run
      out), `RecipientFailed` (for good: a bounce only if its fault is the recipient's),
      `ChannelRefused` (the peer refused it for a reason of its own: given back unspent) or
      `ChannelFailed` (the channel itself: the loop stops and gives back what it has not tried).
      It never raises for anything the peer answered; an exception means the outcome is unknown
      (the peer may have it): the loop leaves that delivery to its lease and stops.
    - `close()` lets go of the connection; the channel may be opened again.

    Each sending thread has its own instance of each channel it uses (one connection each); the
    claiming thread has one more, for `outgoing` only. `name` is the registry key; `label` what the
    send report and the metrics count its outcomes under. `media` is what `data` holds ("eml" or
    "json"); `sealed` whether its address is a secret kept sealed (never printed, never exported).
    A new channel is a subclass in a module of its own and one line in the registry
    (digest.delivery.channels).
    """

    name: ClassVar[str]
    media: ClassVar[str] = "eml"
    sealed: ClassVar[bool] = False
    address: ClassVar[str] = "address"  # what it sends to, as an error names it

    def __init__(self, setup: Setup):
        self.setup = setup

    @property
    def label(self) -> str:
        return self.name

    @abstractmethod
    def outgoing(self, sub: Subscriber, edition: Edition, papers: Mapping[int, Paper] | Entries,
                 now: datetime,
                 sealed: str | None = None) -> Outgoing: ...

    def preview(self, sub: Subscriber, edition: Edition, papers: Mapping[int, Paper] | Entries,
                now: datetime) -> tuple[Rendered, bytes]:
        """What `outgoing` makes, for a preview: the edition as it looks, and the data as it would go."""
        item = self.outgoing(sub, edition, papers, now, sealed=None)
        return item.rendered, item.data

    @classmethod
    def connections(cls, settings: Settings) -> int:
        """How many connections a send keeps open through this channel when it carries the mail (one
        sending thread each)."""
        return 1

    def open(self) -> ChannelFailed | None:
        return None

    @abstractmethod
    def send(self, item: Outgoing) -> Outcome: ...

    def send_after(self, item: Outgoing, ready: Callable[[], None]) -> Outcome:
        """`send(item)`, the item delivered only once `ready()` has returned (the previous item's outcome
        is on the ledger); what `ready` raises propagates, the item not delivered. Here `ready` comes
        first; a channel that can do all but the last step meanwhile overrides it (email over SMTP)."""
        ready()
        return self.send(item)

    def close(self) -> None:
        return None

"""The channels, by name: how a subscriber's `channel` column ("email", "slack", ...) becomes the
`Channel` (digest.delivery.channel) that reaches them.

"email" is the configured mail transport (`mail.transport`: smtp or outbox). A new channel, a new
webhook kind say, is one module with a `Channel` subclass and one entry in `REGISTRY`.
"""

from __future__ import annotations

from digest.config import Settings
from digest.delivery.channel import Channel, Setup
from digest.delivery.channels.discord import Discord
from digest.delivery.channels.generic import Generic
from digest.delivery.channels.outbox import Outbox
from digest.delivery.channels.slack import Slack
from digest.delivery.channels.smtp import Smtp

REGISTRY: dict[str, type[Channel]] = {c.name: c for c in (Smtp, Outbox, Slack, Discord, Generic)}
EMAIL = "email"  # a subscriber's channel when it is an inbox


def name_of(channel: str, settings: Settings) -> str:
    """The registry name of a subscriber's channel ("email": the configured mail transport)."""
    return settings.mail.transport if channel == EMAIL else channel


def kind_of(channel: str, settings: Settings) -> type[Channel]:
    """The channel class that reaches a subscriber whose `channel` column says `channel`."""
    try:
        return REGISTRY[name_of(channel, settings)]
    except KeyError:
        raise ValueError(f"unknown channel {channel!r}") from None


def connections(settings: Settings) -> int:
    """How many connections (one sending thread each) the configured mail channel keeps open."""
    return REGISTRY[settings.mail.transport].connections(settings)


def sealed_kinds() -> tuple[str, ...]:
    """The channels addressed by a secret URL kept sealed: the webhook kinds a subscriber may have."""
    return tuple(name for name, kind in REGISTRY.items() if kind.sealed)


def is_sealed(channel: str) -> bool:
    """Whether a subscriber on `channel` is addressed by a secret kept sealed (never printed, never
    exported): a webhook's URL. An inbox ("email") is not."""
    kind = REGISTRY.get(channel)
    return kind is not None and kind.sealed


class Channels:
    """One thread's channels: an instance of each kind it meets, made on first use (the mail channel
    through `setup.transport` when the caller gave one)."""

    def __init__(self, setup: Setup):
        self.setup = setup
        self._made: dict[str, Channel] = {}

    def get(self, name: str) -> Channel:
        made = self._made.get(name)
        if made is None:
            made = self._made[name] = REGISTRY[name](self.setup)
        return made

    def of(self, channel: str) -> Channel:
        """The channel of a subscriber whose `channel` column says `channel`."""
        return self.get(name_of(channel, self.setup.settings))

    def close(self) -> None:
        for made in self._made.values():
            made.close()

"""Email into the outbox folder: each message an .eml file and an .html preview (digest.mail.transport)."""

from __future__ import annotations

from digest.config import Settings
from digest.delivery.channels.email import MailChannel
from digest.mail.transport import OutboxTransport, Transport


class Outbox(MailChannel):
    name = "outbox"

    @staticmethod
    def connect(settings: Settings) -> Transport:
        return OutboxTransport(settings.mail.outbox_dir)

"""Email over SMTP: one connection per sending thread, reused for every message (digest.mail.transport)."""

from __future__ import annotations

from digest.config import Settings
from digest.delivery.channels.email import MailChannel
from digest.mail.transport import Transport, smtp_from_settings


class Smtp(MailChannel):
    name = "smtp"

    @staticmethod
    def connect(settings: Settings) -> Transport:
        return smtp_from_settings(settings)

    @classmethod
    def connections(cls, settings: Settings) -> int:
        return settings.mail.smtp.pool_size

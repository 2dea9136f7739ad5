"""Mail transports behind one small interface: SMTP (one connection reused) and an outbox folder."""

from __future__ import annotations

import re
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from digest.config import Settings
from digest.mail.message import POLICY


class TemporaryFailure(Exception):
    """Try again later (4xx, dropped connection)."""


class PermanentFailure(Exception):
    """Do not retry this recipient (5xx)."""


class Transport(Protocol):
    def open(self) -> None: ...
    def send(self, msg: EmailMessage, sender: str, recipient: str) -> None: ...
    def close(self) -> None: ...


class OutboxTransport:
    """Writes each message as an .eml file plus an .html preview of its HTML part."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def send(self, msg: EmailMessage, sender: str, recipient: str) -> None:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", msg["Message-ID"].strip("<>"))
        (self.directory / f"{stem}.eml").write_bytes(msg.as_bytes(policy=POLICY))
        html = msg.get_body(("html",))
        if html is not None:
            (self.directory / f"{stem}.html").write_text(html.get_content(), encoding="utf-8")

    def close(self) -> None:
        pass


class SmtpTransport:
    """One SMTP connection reused across the batch; reconnects when the server drops it."""

    def __init__(self, host: str, port: int, *, security: str = "none", username: str | None = None,
                 password: str | None = None, timeout: float = 30.0, local_hostname: str | None = None):
        self.host, self.port, self.security = host, port, security
        self.username, self.password, self.timeout = username, password, timeout
        self.local_hostname = local_hostname
        self.conn: smtplib.SMTP | None = None

    def open(self) -> None:
        ctx = ssl.create_default_context()
        try:
            if self.security == "tls":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                                      local_hostname=self.local_hostname, context=ctx)
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout, local_hostname=self.local_hostname)
                if self.security == "starttls":
                    conn.starttls(context=ctx)
            if self.username:
                conn.login(self.username, self.password or "")
        except smtplib.SMTPAuthenticationError as err:
            raise PermanentFailure(f"SMTP authentication failed: {err.smtp_code}") from None
        except (OSError, smtplib.SMTPException) as err:
            raise TemporaryFailure(f"cannot connect to {self.host}:{self.port}: {err}") from None
        self.conn = conn

    def send(self, msg: EmailMessage, sender: str, recipient: str) -> None:
        if self.conn is None:
            self.open()
        assert self.conn is not None
        try:
            self.conn.sendmail(sender, [recipient], msg.as_bytes(policy=POLICY))
        except smtplib.SMTPRecipientsRefused as err:
            code, reply = next(iter(err.recipients.values()))
            self._raise_for(code, reply)
        except smtplib.SMTPResponseException as err:
            if err.smtp_code == 421:
                self._drop()
            self._raise_for(err.smtp_code, err.smtp_error)
        except (smtplib.SMTPServerDisconnected, OSError) as err:
            self._drop()
            raise TemporaryFailure(f"connection lost: {err}") from None

    @staticmethod
    def _raise_for(code: int, reply: bytes | str) -> None:
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        if 400 <= code < 500:
            raise TemporaryFailure(f"{code} {text}")
        raise PermanentFailure(f"{code} {text}")

    def _drop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._drop()


def from_settings(settings: Settings) -> Transport:
    mail = settings.mail
    if mail.transport == "smtp":
        s = mail.smtp
        return SmtpTransport(s.host, s.port, security=s.security, username=s.username,
                             password=settings.smtp_password(), timeout=s.timeout)
    return OutboxTransport(mail.outbox_dir)

"""Mail transports behind one small interface: SMTP (a connection reused) and an outbox folder.

A transport sends one finished message (bytes, already signed) to one recipient and says how it
went: returning means accepted; `TemporaryFailure` (4xx) and `PermanentFailure` (5xx) are about that
recipient; `TransportUnavailable` means nothing can be sent through it now (server down, login
refused), so the caller stops and leaves the rest for later.
"""

from __future__ import annotations

import email
import email.policy
import re
import smtplib
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, Protocol

from digest.config import Settings
from digest.mail.smtp_pipelining import sendmail

_ENHANCED = re.compile(r"\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b")  # "550 5.1.1 ..." -> 5.1.1 (RFC 3463)


class DeliveryError(Exception):
    """The server answered about this recipient: `code` is the SMTP reply code, if there was one."""

    def __init__(self, message: str, code: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after  # seconds the server asked to wait (HTTP Retry-After), if it did

    @property
    def status(self) -> str | None:
        """The enhanced status code (RFC 3463) in the reply, e.g. '5.1.1', else the reply code."""
        m = _ENHANCED.match(str(self))
        return m.group(1) if m else (str(self.code) if self.code else None)


class TemporaryFailure(DeliveryError):
    """Try again later (4xx, or a connection lost during this message)."""


class PermanentFailure(DeliveryError):
    """Do not retry this recipient (5xx)."""


class TransportUnavailable(Exception):
    """Nothing can be sent now (cannot connect, login refused, sender refused): stop the run."""


class Transport(Protocol):
    name: str  # "smtp", "outbox", "webhook": what the send report counts outcomes by

    def open(self) -> None: ...
    def send(self, data: bytes, sender: str, recipient: str) -> None: ...
    def close(self) -> None: ...


class OutboxTransport:
    """Writes each message as an .eml file plus an .html preview of its HTML part."""

    name = "outbox"

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def send(self, data: bytes, sender: str, recipient: str) -> None:
        msg = email.message_from_bytes(data, policy=email.policy.default)
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", (msg["Message-ID"] or recipient).strip("<>"))
        (self.directory / f"{stem}.eml").write_bytes(data)
        html = msg.get_body(("html",))  # type: ignore[attr-defined]
        if html is not None:
            (self.directory / f"{stem}.html").write_text(html.get_content(), encoding="utf-8")

    def close(self) -> None:
        pass


class SmtpTransport:
    """One SMTP connection reused for every message; reconnects once on 421 or a dropped connection.

    One recipient per transaction, so a reply always concerns exactly one delivery.
    """

    name = "smtp"

    def __init__(self, host: str, port: int, *, security: str = "none", username: str | None = None,
                 password: str | None = None, timeout: float = 30.0, local_hostname: str | None = None,
                 context: ssl.SSLContext | None = None):
        self.host, self.port, self.security = host, port, security
        self.username, self.password, self.timeout = username, password, timeout
        self.local_hostname = local_hostname
        self.context = context
        self.conn: smtplib.SMTP | None = None
        self.connects = 0  # how many times a connection was opened (for tests and benchmarks)

    def open(self) -> None:
        if self.conn is not None:
            return
        ctx = self.context or ssl.create_default_context()
        conn: smtplib.SMTP | None = None
        try:
            if self.security == "tls":
                conn = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                        local_hostname=self.local_hostname, context=ctx)
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout,
                                    local_hostname=self.local_hostname)
                if self.security == "starttls":
                    conn.starttls(context=ctx)
            if self.username:
                conn.login(self.username, self.password or "")
        except (OSError, smtplib.SMTPException) as err:
            if conn is not None:
                conn.close()
            detail = (f"{err.smtp_code} {_text(err.smtp_error)}"
                      if isinstance(err, smtplib.SMTPResponseException) else err)
            raise TransportUnavailable(f"SMTP {self.host}:{self.port}: {detail}") from None
        self.conn = conn
        self.connects += 1

    def send(self, data: bytes, sender: str, recipient: str) -> None:
        """Send one message to one recipient (`smtp_pipelining.sendmail`); what a failure means is
    `_OUTCOMES`, looked up by `_outcome`."""
        for attempt in (1, 2):
            self.open()
            assert self.conn is not None
            try:
                sendmail(self.conn, sender, recipient, data)
                return
            except _CAUGHT as err:
                outcome = _outcome(err, sender, recipient)
            if outcome.drop:
                self._drop()
            if not (outcome.retry and attempt == 1):
                raise outcome.error from None

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


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)


def _failure(code: int, reply: bytes | str) -> DeliveryError:
    text = f"{code} {_text(reply)}"
    return TemporaryFailure(text, code) if 400 <= code < 500 else PermanentFailure(text, code)


class _Outcome(NamedTuple):
    """What a failed `sendmail` means for the connection and for this message."""

    drop: bool  # close the connection: the next attempt or message opens a new one
    retry: bool  # send again once on a new connection (implies drop); used up, raise `error`
    error: Exception  # what `send` raises


def _reply(code: int, reply: bytes | str) -> _Outcome:
    """A reply code, to MAIL, RCPT or DATA: 421 (closing) drops and retries once; else `_failure`, same
    connection."""
    return _Outcome(code == 421, code == 421, _failure(code, reply))


def _recipient_refused(err: smtplib.SMTPRecipientsRefused, sender: str, recipient: str) -> _Outcome:
    return _reply(*next(iter(err.recipients.values())))


def _sender_refused(err: smtplib.SMTPSenderRefused, sender: str, recipient: str) -> _Outcome:
    """A sender refused for good (5xx) refuses every message: stop the run; 421 and other 4xx as `_reply`."""
    if err.smtp_code >= 500:
        return _Outcome(False, False, TransportUnavailable(
            f"sender {sender} refused: {err.smtp_code} {_text(err.smtp_error)}"))
    return _reply(err.smtp_code, err.smtp_error)


def _refused(err: smtplib.SMTPResponseException, sender: str, recipient: str) -> _Outcome:
    return _reply(err.smtp_code, err.smtp_error)  # DATA refused, or an unexpected reply


def _not_ascii(err: UnicodeEncodeError, sender: str, recipient: str) -> _Outcome:
    # the transaction may be half open: start the next one afresh
    return _Outcome(True, False,
                    PermanentFailure(f"{recipient!r}: not an ASCII address (SMTPUTF8 is not supported)"))


def _timed_out(err: TimeoutError, sender: str, recipient: str) -> _Outcome:
    # the server may have taken the message without saying so yet: no immediate resend
    return _Outcome(True, False, TemporaryFailure(f"timed out: {err}"))


def _connection_lost(err: OSError, sender: str, recipient: str) -> _Outcome:
    # dropped mid-transaction: send it again, once (had the server already taken it without a chance
    # to say so, this is the one duplicate nothing can prevent)
    return _Outcome(True, True, TemporaryFailure(f"connection lost: {err}"))


# What each exception `sendmail` raises means; the first row whose type matches decides (order matters:
# SMTPException is an OSError, TimeoutError too). Exceptions of no row propagate unchanged.
_OUTCOMES: tuple[tuple[type[Exception], Callable[..., _Outcome]], ...] = (
    (smtplib.SMTPRecipientsRefused, _recipient_refused),
    (smtplib.SMTPSenderRefused, _sender_refused),
    (smtplib.SMTPResponseException, _refused),
    (UnicodeEncodeError, _not_ascii),
    (TimeoutError, _timed_out),
    (smtplib.SMTPServerDisconnected, _connection_lost),
    (OSError, _connection_lost),
)
_CAUGHT = tuple(kind for kind, _ in _OUTCOMES)


def _outcome(err: Exception, sender: str, recipient: str) -> _Outcome:
    """The outcome of the first row of `_OUTCOMES` matching `err` (one of `_CAUGHT`). smtplib reports
    a reply that timed out as a disconnect; it counts as the timeout it was (no immediate resend)."""
    if isinstance(err, smtplib.SMTPServerDisconnected) and isinstance(err.__context__, TimeoutError):
        err = err.__context__
    return next(handle(err, sender, recipient) for kind, handle in _OUTCOMES if isinstance(err, kind))


def smtp_from_settings(settings: Settings) -> SmtpTransport:
    s = settings.mail.smtp
    ctx = ssl.create_default_context(cafile=s.ca_file) if s.ca_file else None
    return SmtpTransport(s.host, s.port, security=s.security, username=s.username,
                         password=settings.smtp_password(), timeout=s.timeout, context=ctx)


def from_settings(settings: Settings) -> Transport:
    if settings.mail.transport == "smtp":
        return smtp_from_settings(settings)
    return OutboxTransport(settings.mail.outbox_dir)

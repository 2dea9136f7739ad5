"""Mail transports behind one small interface: SMTP (a connection reused) and an outbox folder.

A transport sends one finished message (bytes, already signed) to one recipient and says how it
went: returning means accepted; `TemporaryFailure` (4xx, or no reply) and `PermanentFailure` (5xx)
say what happened to this message, at which stage, and `verdict` who the refusal is about (the
recipient, the message or the relay: digest.mail.enhanced_status.judge); `TransportUnavailable` means
nothing can be sent through it now (server down, login or sender refused), so the caller stops and
leaves the rest for later.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import smtplib
import socket
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, Protocol

from digest.config import Settings
from digest.mail.enhanced_status import MAIL, RCPT, Verdict, judge
from digest.mail.smtp_pipelining import At, Unended, sendmail

_ENHANCED = re.compile(r"\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b")  # "550 5.1.1 ..." -> 5.1.1 (RFC 3463)


class DeliveryError(Exception):
    """This message did not go: `code` is the SMTP reply code, if there was a reply, `stage` where
    (digest.mail.enhanced_status: MAIL, RCPT, DATA, END), if known."""

    def __init__(self, message: str, code: int | None = None, retry_after: float | None = None,
                 stage: str | None = None):
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after  # seconds the server asked to wait (HTTP Retry-After), if it did
        self.stage = stage

    @property
    def verdict(self) -> Verdict | None:
        """Who the refusal is about (`judge`); None without a reply (the connection was lost or stalled,
        `stage` says when) or a stage."""
        if self.code is None or self.stage is None:
            return None
        return judge(self.stage, self.code, str(self))

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
    """Writes each message as an .eml file plus an .html preview of its HTML part, named after its
    Message-ID. Each file is written whole or not at all (a temporary file renamed into place); a
    folder it cannot write (missing rights, a full disk) is `TransportUnavailable`, in one line, with
    nothing left behind, so the run gives the delivery back and a later one writes it."""

    name = "outbox"

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def open(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise TransportUnavailable(f"outbox {self.directory}: {err.strerror or err}") from None

    def send(self, data: bytes, sender: str, recipient: str) -> None:
        msg = email.message_from_bytes(data, policy=email.policy.default)
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", (msg["Message-ID"] or recipient).strip("<>"))
        html = msg.get_body(("html",))  # type: ignore[attr-defined]
        files = [(self.directory / f"{stem}.eml", data)]
        if html is not None:
            files.append((self.directory / f"{stem}.html", html.get_content().encode("utf-8")))
        self.open()
        done: list[Path] = []
        try:
            for path, content in files:
                _write_whole(path, content)
                done.append(path)
        except OSError as err:
            for written in done:  # the .eml without its preview: neither, the next run writes both
                written.unlink(missing_ok=True)
            raise TransportUnavailable(f"outbox {self.directory}: cannot write {path.name}: "
                                       f"{err.strerror or err}") from None

    def close(self) -> None:
        pass


def _write_whole(path: Path, content: bytes) -> None:
    """`path` holds `content` whole, or is left as it was: written to a temporary file beside it,
    flushed to disk, then renamed over it (a full disk leaves no partial file)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # as a plain write makes it (mkstemp's is 0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
            conn.ehlo_or_helo_if_needed()  # a refused EHLO refuses every message: not any one's fault
            # a message's ending dot may go alone, after the rest (`before_end`): not held back by Nagle
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, smtplib.SMTPException) as err:
            if conn is not None:
                conn.close()
            detail = (f"{err.smtp_code} {_text(err.smtp_error)}"
                      if isinstance(err, smtplib.SMTPResponseException) else err)
            raise TransportUnavailable(f"SMTP {self.host}:{self.port}: {detail}") from None
        self.conn = conn
        self.connects += 1

    def send(self, data: bytes, sender: str, recipient: str,
             before_end: Callable[[], None] | None = None) -> None:
        """Send one message to one recipient (`smtp_pipelining.sendmail`); what a failure means is
        `_OUTCOMES`, looked up by `_outcome`. `before_end`: called (once) before the dot that ends the
        message; what it raises propagates, the connection closed without that dot."""
        for attempt in (1, 2):
            self.open()
            assert self.conn is not None
            if (limit := _size_limit(self.conn)) and len(data) > limit:  # RFC 1870: it would be refused
                raise PermanentFailure(f"552 5.3.4 the message is {len(data)} bytes, over the relay's "
                                       f"SIZE limit of {limit} bytes", 552, stage=MAIL)
            try:
                sendmail(self.conn, sender, recipient, data, before_end)
                return
            except Unended as held:
                self.conn = None  # closed without the ending dot
                raise held.error from None
            except At as failed:
                outcome = _outcome(failed.error, failed.stage, sender, recipient)
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
    return " ".join(reply.decode(errors="replace").split()) if isinstance(reply, bytes) else str(reply)


def _size_limit(conn: smtplib.SMTP) -> int:
    """The largest message the server takes (its SIZE), 0 when it names none."""
    size = conn.esmtp_features.get("size", "").strip()
    return int(size) if size.isdigit() else 0


def _failure(code: int, reply: bytes | str, stage: str) -> DeliveryError:
    text = f"{code} {_text(reply)}"
    kind = TemporaryFailure if 400 <= code < 500 else PermanentFailure
    return kind(text, code, stage=stage)


class _Outcome(NamedTuple):
    """What a failed `sendmail` means for the connection and for this message."""

    drop: bool  # close the connection: the next attempt or message opens a new one
    retry: bool  # send again once on a new connection (implies drop); used up, raise `error`
    error: Exception  # what `send` raises


def _reply(code: int, reply: bytes | str, stage: str) -> _Outcome:
    """A reply code, to MAIL, RCPT, DATA or the end of data: 421 (closing) drops and retries once;
    else `_failure`, same connection."""
    return _Outcome(code == 421, code == 421, _failure(code, reply, stage))


def _recipient_refused(err: smtplib.SMTPRecipientsRefused, stage: str, sender: str,
                       recipient: str) -> _Outcome:
    return _reply(*next(iter(err.recipients.values())), RCPT)


def _sender_refused(err: smtplib.SMTPSenderRefused, stage: str, sender: str, recipient: str) -> _Outcome:
    """A sender refused for good (5xx) refuses every message: stop the run, unless the refusal is about
    this message (its SIZE); 421 and other 4xx as `_reply`."""
    if err.smtp_code >= 500 and judge(MAIL, err.smtp_code, _text(err.smtp_error)).party != "message":
        return _Outcome(False, False, TransportUnavailable(
            f"sender {sender} refused: {err.smtp_code} {_text(err.smtp_error)}"))
    return _reply(err.smtp_code, err.smtp_error, MAIL)


def _refused(err: smtplib.SMTPResponseException, stage: str, sender: str, recipient: str) -> _Outcome:
    return _reply(err.smtp_code, err.smtp_error, stage)  # DATA or the message refused, or an unexpected reply


def _not_ascii(err: UnicodeEncodeError, stage: str, sender: str, recipient: str) -> _Outcome:
    # the transaction may be half open: start the next one afresh
    return _Outcome(True, False, PermanentFailure(
        f"{recipient!r}: not an ASCII address (SMTPUTF8 is not supported)", stage=stage))


def _timed_out(err: TimeoutError, stage: str, sender: str, recipient: str) -> _Outcome:
    # at the end of data the server may have taken the message without saying so yet: no immediate resend
    return _Outcome(True, False, TemporaryFailure(f"timed out at {stage}: {err}", stage=stage))


def _connection_lost(err: OSError, stage: str, sender: str, recipient: str) -> _Outcome:
    # dropped mid-transaction: send it again, once (had the server already taken it without a chance
    # to say so, this is the one duplicate nothing can prevent)
    return _Outcome(True, True, TemporaryFailure(f"connection lost at {stage}: {err}", stage=stage))


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


def _outcome(err: BaseException, stage: str, sender: str, recipient: str) -> _Outcome:
    """The outcome of the first row of `_OUTCOMES` matching `err`, at `stage`. smtplib reports a reply
    that timed out as a disconnect; it counts as the timeout it was (no immediate resend). Exceptions
    of no row propagate unchanged."""
    if isinstance(err, smtplib.SMTPServerDisconnected) and isinstance(err.__context__, TimeoutError):
        err = err.__context__
    for kind, handle in _OUTCOMES:
        if isinstance(err, kind):
            return handle(err, stage, sender, recipient)
    raise err


def smtp_from_settings(settings: Settings) -> SmtpTransport:
    s = settings.mail.smtp
    ctx = ssl.create_default_context(cafile=s.ca_file) if s.ca_file else None
    return SmtpTransport(s.host, s.port, security=s.security, username=s.username,
                         password=settings.smtp_password(), timeout=s.timeout, context=ctx)


def from_settings(settings: Settings) -> Transport:
    if settings.mail.transport == "smtp":
        return smtp_from_settings(settings)
    return OutboxTransport(settings.mail.outbox_dir)

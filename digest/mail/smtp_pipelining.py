"""SMTP in fewer round trips: speed work behind smtplib's own `sendmail`. The contract: `sendmail`
sends the same bytes smtplib's `SMTP.sendmail(sender, [recipient], data)` sends, and fails with what
it raises for the same replies (so digest.mail.transport reads both alike), wrapped in `At` with the
stage it happened at; only the waiting differs. Checked by tests/test_mail_transport.py (the message
the server receives is the one sent, byte for byte, pipelined or not; every reply at every stage ends
the same way).
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable

from digest.mail.enhanced_status import DATA, EHLO, END, MAIL, RCPT


class At(Exception):
    """`error` (what smtplib raises for that reply, or the socket's error) happened at `stage`
    (digest.mail.enhanced_status: EHLO, MAIL, RCPT, DATA while the command or the message goes, END
    once the whole message is out and its reply awaited)."""

    def __init__(self, stage: str, error: BaseException):
        super().__init__(f"{stage}: {error}")
        self.stage, self.error = stage, error


class Unended(Exception):
    """`before_end` raised `error`: the message went all but its ending dot, and the connection was
    closed (the relay delivers nothing of it)."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


def sendmail(conn: smtplib.SMTP, sender: str, recipient: str, data: bytes,
             before_end: Callable[[], None] | None = None) -> None:
    """`conn.sendmail(sender, [recipient], data)`, in two round trips instead of four where the server
    offers PIPELINING (RFC 2920): MAIL, RCPT and DATA go in one write, their replies are read in
    turn. Fails with `At(stage, what smtplib's sendmail raises for the same reply)`. `before_end`,
    when given, is called once the message is out but for the dot that ends it; if it raises, the
    connection is closed without that dot and `Unended` raised.
    """
    stage = [EHLO]
    try:
        conn.ehlo_or_helo_if_needed()
        stage[0] = MAIL
        if conn.has_extn("pipelining"):
            _pipelined(conn, sender, recipient, data, stage, before_end)
        else:
            _in_turn(conn, sender, recipient, data, stage, before_end)
    except (At, Unended):
        raise
    except (OSError, smtplib.SMTPException, UnicodeEncodeError) as err:
        raise At(stage[0], err) from err


def _size(conn: smtplib.SMTP, data: bytes) -> str:
    return f" SIZE={len(data)}" if conn.has_extn("size") else ""


def _end(conn: smtplib.SMTP, data: bytes, stage: list[str], before_end: Callable[[], None] | None) -> None:
    """The message, then the reply to its end (the stage is END once the last byte is out)."""
    stage[0] = DATA
    if before_end is None:
        conn.send(_dot_stuffed(data))
    else:
        body = _dot_stuffed(data)
        conn.send(body[:-3])  # all but the last line, the dot alone (".\r\n")
        try:
            before_end()
        except BaseException as err:
            conn.close()
            raise Unended(err) from err
        conn.send(body[-3:])
    stage[0] = END
    code, reply = conn.getreply()
    if code != 250:
        if code == 421:
            conn.close()
        else:
            _rset(conn)
        raise smtplib.SMTPDataError(code, reply)


def _in_turn(conn: smtplib.SMTP, sender: str, recipient: str, data: bytes, stage: list[str],
             before_end: Callable[[], None] | None) -> None:
    """One command at a time, as smtplib's sendmail goes (it cannot tell DATA's reply from the end's)."""
    conn.putcmd("mail", f"FROM:{smtplib.quoteaddr(sender)}{_size(conn, data)}")
    code, reply = conn.getreply()
    if code != 250:
        _closing_or_reset(conn, code)
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    stage[0] = RCPT
    code, reply = conn.rcpt(recipient)
    if code not in (250, 251):
        _closing_or_reset(conn, code)
        raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
    stage[0] = DATA
    conn.putcmd("data")
    code, reply = conn.getreply()
    if code != 354:
        _closing_or_reset(conn, code)
        raise smtplib.SMTPDataError(code, reply)
    _end(conn, data, stage, before_end)


def _closing_or_reset(conn: smtplib.SMTP, code: int) -> None:
    if code == 421:
        conn.close()
    else:
        _rset(conn)


def _rset(conn: smtplib.SMTP) -> None:
    """RSET, as smtplib does after a refusal: a server that has gone meanwhile is not the error."""
    try:
        conn.rset()
    except smtplib.SMTPServerDisconnected:
        pass


def _pipelined(conn: smtplib.SMTP, sender: str, recipient: str, data: bytes, stage: list[str],
               before_end: Callable[[], None] | None) -> None:
    conn.send(f"MAIL FROM:{smtplib.quoteaddr(sender)}{_size(conn, data)}\r\nRCPT "
              f"TO:{smtplib.quoteaddr(recipient)}\r\nDATA\r\n")
    refusal: smtplib.SMTPException | None = None
    code, reply = conn.getreply()
    if code != 250:
        refusal = smtplib.SMTPSenderRefused(code, reply, sender)
    else:
        stage[0] = RCPT
        if (code := (rcpt := conn.getreply())[0]) not in (250, 251):
            refusal = smtplib.SMTPRecipientsRefused({recipient: rcpt})
    if refusal is not None:  # the rest of the group still answers, unless the server is closing
        if code == 421:
            conn.close()
            raise refusal
        if refusal.__class__ is smtplib.SMTPSenderRefused:
            conn.getreply()
        if conn.getreply()[0] == 354:  # DATA taken despite the refusal: end it empty
            conn.send(b".\r\n")
            conn.getreply()
        _rset(conn)
        raise refusal
    stage[0] = DATA
    code, reply = conn.getreply()
    if code != 354:
        raise smtplib.SMTPDataError(code, reply)
    _end(conn, data, stage, before_end)


def _dot_stuffed(data: bytes) -> bytes:
    """The message as DATA sends it (RFC 5321 4.5.2): a leading dot doubled, CRLF, then the ending dot;
    the bytes smtplib's regular expression makes. The few lines that start with a dot are found by
    `find` (bytes.replace of a two-byte pattern takes seven times as long on a 70 KB digest)."""
    out, start = [b"."] if data.startswith(b".") else [], 0
    while (at := data.find(b"\n.", start)) >= 0:
        out += (data[start:at + 1], b".")
        start = at + 1
    out.append(data[start:] if start else data)
    out.append(b".\r\n" if data.endswith(b"\r\n") else b"\r\n.\r\n")
    return b"".join(out)

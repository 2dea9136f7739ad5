"""Standards-compliant digest messages (RFC 5322, RFC 2045/2047, RFC 2369, RFC 8058)."""

from __future__ import annotations

import email
import email.utils
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from functools import lru_cache

from digest.mail.fast_encoding import fold, qp, qp_parts
from digest.mail.policy import POLICY

# C0 and C1 controls and the Unicode line/paragraph separators: all of what str.splitlines() splits on.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def clean_header(value: str | None) -> str:
    """No CR, LF, NEL or other control character or line separator can reach a header: each run of them
    becomes one space."""
    return _CONTROL.sub(" ", value or "").strip()


@lru_cache(maxsize=256)
def parse_address(value: str) -> Address:
    """`Name <addr>` as an Address (remembered: every message parses the same From)."""
    name, addr = email.utils.parseaddr(clean_header(value))
    if "@" not in addr:
        raise ValueError(f"not an email address: {value!r}")
    local, _, domain = addr.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def ascii_address(address: str) -> str:
    """The address as SMTP and headers take it without SMTPUTF8: an IDN domain in its xn-- form.

    A non-ASCII local part cannot be sent that way: ValueError.
    """
    local, _, domain = clean_header(address).rpartition("@")
    if not local.isascii():
        raise ValueError(f"{address!r}: a non-ASCII local part needs SMTPUTF8, which is not supported")
    try:
        return f"{local}@{domain if domain.isascii() else domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        raise ValueError(f"{address!r}: the domain is not a valid internationalised name") from None


def make_message_id(delivery_id: int, period: str, domain: str, token: str | None = None) -> str:
    """A delivery's Message-ID, made once when it is planned and stored with it, so a retry reuses it
    (and receivers can deduplicate). Never the same for two deliveries, even when the database hands
    a deleted delivery's id to a new one (SQLite does): `token` (default: 64 random bits) makes it
    unique, and the outbox file named after it too."""
    token = token if token is not None else secrets.token_hex(8)
    return f"<digest.{delivery_id}.{re.sub(r'[^A-Za-z0-9-]', '', period)}.{token}@{domain}>"


def new_message_id(tag: str, from_address: str) -> str:
    """A fresh, unique Message-ID in the sender's domain, for a one-off message (a confirmation, say)."""
    return email.utils.make_msgid(tag, domain=sender_domain(from_address))


@dataclass(frozen=True)
class Envelope:
    """The headers of one message. A digest is a list message and carries the list headers (RFC 2369,
    RFC 8058); a one-off notice has none, and says it was sent automatically (RFC 3834)."""

    from_address: str
    to_address: str
    to_name: str | None
    subject: str
    message_id: str
    list_id: str | None = None
    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | None = None
    reply_to: str | None = None
    date: datetime | None = None
    auto_submitted: str | None = None  # "auto-generated" for a notice


def _url(value: str) -> str:
    """A URL for a list header: printable ASCII without spaces, commas or angle brackets."""
    value = clean_header(value)
    if not value.isascii() or re.search(r"[\s,<>]", value):
        raise ValueError(f"not usable in a List-Unsubscribe header: {value!r}")
    return value


def _headers(env: Envelope) -> list[tuple[str, str | Address]]:
    to_local, _, to_domain = ascii_address(env.to_address).rpartition("@")
    head: list[tuple[str, str | Address]] = [
        ("From", parse_address(env.from_address)),
        ("To", Address(display_name=clean_header(env.to_name), username=to_local, domain=to_domain)),
    ]
    if env.reply_to:
        head.append(("Reply-To", parse_address(env.reply_to)))
    head += [("Subject", clean_header(env.subject)),
             ("Date", email.utils.format_datetime(env.date or datetime.now(UTC))),
             ("Message-ID", clean_header(env.message_id))]
    if env.auto_submitted:
        head.append(("Auto-Submitted", clean_header(env.auto_submitted)))
    if env.list_id:
        head.append(("List-Id", clean_header(env.list_id)))
    unsubscribe = [f"<{_url(env.unsubscribe_url)}>"] if env.unsubscribe_url else []
    if env.unsubscribe_mailto:
        unsubscribe.append(f"<{_url(f'mailto:{clean_header(env.unsubscribe_mailto)}?subject=unsubscribe')}>")
    if unsubscribe:
        head.append(("List-Unsubscribe", ", ".join(unsubscribe)))
    # RFC 8058: an HTTPS URI only
    if env.unsubscribe_url and env.unsubscribe_url.lower().startswith("https://"):
        head.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    head.append(("MIME-Version", "1.0"))
    return head


# Starts with "=_", which quoted-printable text can never contain: one boundary serves every message.
_BOUNDARY = f"=_digest_{secrets.token_hex(12)}"


def message_bytes(env: Envelope, text: str, html: str, html_parts: Sequence[tuple[str, bool]] = (),
                  text_parts: Sequence[tuple[str, bool]] = ()) -> bytes:
    """The message as it goes on the wire: multipart/alternative, text part first, CRLF, 7-bit clean.

    Headers and bodies are encoded by digest.mail.fast_encoding: what the email package (encoding,
    folding, no injection) and binascii would write, several times faster on a 60 KB digest. `html_parts`,
    `text_parts`: the bodies in whole lines, as the renderer made them
    (`Rendered.html_parts`), so that the parts shared by many messages are encoded once.
    """
    head = [*_headers(env), ("Content-Type", f'multipart/alternative; boundary="{_BOUNDARY}"')]
    out = [fold(name, value) for name, value in head]
    out.append(b"\r\n")
    for subtype, body, parts in (("plain", text, text_parts), ("html", html, html_parts)):
        out.append(f'--{_BOUNDARY}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'
                   f"Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode("ascii"))
        out.append(qp_parts(parts) if parts else qp(body))
        out.append(b"\r\n")
    out.append(f"--{_BOUNDARY}--\r\n".encode("ascii"))
    return b"".join(out)


def build_message(env: Envelope, text: str, html: str) -> EmailMessage:
    """The same message as an EmailMessage (for previews and tests): `message_bytes`, parsed."""
    return email.message_from_bytes(message_bytes(env, text, html),
                                    policy=POLICY)  # type: ignore[return-value]


def sender_domain(from_address: str) -> str:
    return parse_address(from_address).domain or "localhost"

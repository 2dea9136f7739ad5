"""Standards-compliant digest messages (RFC 5322, RFC 2369, RFC 8058)."""

from __future__ import annotations

import email.policy
import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage

# Lines up to RFC 5322's hard limit: the default 78 folds a long List-Unsubscribe into RFC 2047
# encoded words, which breaks its URLs. Non-ASCII text is still encoded properly.
POLICY = email.policy.SMTP.clone(max_line_length=998)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def clean_header(value: str | None) -> str:
    """No CR, LF or other control character can reach a header: they become one space."""
    return _CONTROL.sub(" ", value or "").strip()


def parse_address(value: str) -> Address:
    name, addr = email.utils.parseaddr(clean_header(value))
    if "@" not in addr:
        raise ValueError(f"not an email address: {value!r}")
    local, _, domain = addr.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def make_message_id(delivery_id: int, period: str, domain: str) -> str:
    """Stable for a delivery, so a retry reuses it (and receivers can deduplicate)."""
    return f"<digest.{delivery_id}.{re.sub(r'[^A-Za-z0-9-]', '', period)}@{domain}>"


@dataclass(frozen=True)
class Envelope:
    from_address: str
    to_address: str
    to_name: str | None
    subject: str
    message_id: str
    list_id: str
    unsubscribe_url: str
    unsubscribe_mailto: str
    reply_to: str | None = None
    date: datetime | None = None


def build_message(env: Envelope, text: str, html: str) -> EmailMessage:
    msg = EmailMessage(policy=POLICY)
    sender = parse_address(env.from_address)
    msg["From"] = sender
    to_local, _, to_domain = clean_header(env.to_address).rpartition("@")
    msg["To"] = Address(display_name=clean_header(env.to_name), username=to_local, domain=to_domain)
    if env.reply_to:
        msg["Reply-To"] = parse_address(env.reply_to)
    msg["Subject"] = clean_header(env.subject)
    msg["Date"] = email.utils.format_datetime(env.date or datetime.now(UTC))
    msg["Message-ID"] = env.message_id
    msg["List-Id"] = clean_header(env.list_id)
    mailto = f"mailto:{clean_header(env.unsubscribe_mailto)}?subject=unsubscribe"
    msg["List-Unsubscribe"] = f"<{clean_header(env.unsubscribe_url)}>, <{mailto}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["MIME-Version"] = "1.0"
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


def sender_domain(from_address: str) -> str:
    return parse_address(from_address).domain or "localhost"

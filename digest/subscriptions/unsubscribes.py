"""The mailto alternative of List-Unsubscribe: read a Maildir or mbox, unsubscribe each sender.

Digests carry `List-Unsubscribe: <https://…>, <mailto:UNSUBSCRIBE_MAILTO?subject=unsubscribe>`. Point
that mailbox at a Maildir (or mbox) and run `digest unsubscribes process --maildir PATH` from cron.
Maildir messages are marked seen ('S') once handled, so a rerun skips them; an mbox is only read,
which is safe because unsubscribing is idempotent.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

from digest.mail import mailbox as inbox
from digest.records import utcnow
from digest.store.db import Database
from digest.subscriptions import signup as selfservice
from digest.subscriptions import subscribers
from digest.subscriptions.rules import SubscriberError, normalise_email


@dataclass
class MailboxReport:
    read: int = 0
    unsubscribed: int = 0  # subscribers who were subscribed until now
    already: int = 0  # already unsubscribed
    unknown: int = 0  # sender is not a subscriber
    skipped: int = 0  # bounces, auto-replies, messages that do not ask to unsubscribe
    details: list[str] = field(default_factory=list)


def requester(msg: EmailMessage) -> str | None:
    """The address asking to be unsubscribed, or None for a message that is not such a request."""
    if (msg.get("Auto-Submitted") or "no").strip().lower() != "no":
        return None  # auto-replies and delivery reports
    if (msg.get("Return-Path") or "").strip() == "<>" or msg.get_content_type() == "multipart/report":
        return None  # a bounce or a delivery/complaint report (digest.delivery.bounces reads those)
    body = msg.get_body(("plain",))
    text = f"{msg.get('Subject') or ''}\n{body.get_content() if body is not None else ''}"[:10_000]
    if "unsubscribe" not in text.lower():
        return None
    _, address = email.utils.parseaddr(str(msg.get("From") or ""))
    try:
        return normalise_email(address)
    except SubscriberError:
        return None


def _handle(db: Database, raw: bytes, report: MailboxReport, now: datetime) -> None:
    report.read += 1
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        address = requester(msg)  # type: ignore[arg-type]
    except (ValueError, LookupError, UnicodeError):
        address = None
    if address is None:
        report.skipped += 1
        return
    try:
        before = subscribers.get(db, address).status
    except SubscriberError:
        report.unknown += 1
        return
    selfservice.unsubscribe_address(db, address, now, detail="mailto")
    if before == "unsubscribed":
        report.already += 1
    else:
        report.unsubscribed += 1
        report.details.append(address)


def process_maildir(db: Database, path: str | Path, now: datetime | None = None) -> MailboxReport:
    """Handle each unseen message of a Maildir and mark it seen (ValueError if `path` is not a Maildir)."""
    return _handle_all(db, inbox.maildir_messages(path, mark_seen=True), now)


def process_mbox(db: Database, path: str | Path, now: datetime | None = None) -> MailboxReport:
    """Handle every message of an mbox file, left as it is (ValueError if there is no such file)."""
    return _handle_all(db, inbox.mbox_messages(path), now)


def _handle_all(db: Database, raws: Iterable[bytes], now: datetime | None) -> MailboxReport:
    now = now or utcnow()
    report = MailboxReport()
    for raw in raws:
        _handle(db, raw, report, now)
    return report


def process(db: Database, maildirs: Iterable[str] = (), mboxes: Iterable[str] = ()) -> MailboxReport:
    """Both kinds at once, one summed report (what the CLI calls)."""
    total = MailboxReport()
    for fn, paths in ((process_maildir, maildirs), (process_mbox, mboxes)):
        for p in paths:
            r = fn(db, p)
            for k in ("read", "unsubscribed", "already", "unknown", "skipped"):
                setattr(total, k, getattr(total, k) + getattr(r, k))
            total.details += r.details
    return total

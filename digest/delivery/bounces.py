"""Bounces and complaints: record them, and suppress an address once the policy says so.

Sources of bounces:
- the SMTP server refusing a recipient while we send (5xx, or 4xx until the retries run out);
- delivery status notifications (RFC 3464: multipart/report; report-type=delivery-status) and
  complaint reports (RFC 5965 ARF: report-type=feedback-report) read from a Maildir or an mbox.

Each bounce is one `bounces` row with a unique key, so reading the same mailbox twice counts nothing
twice. Policy (`[mail]` bounce_hard_limit, bounce_soft_limit, bounce_window_days): an address is
suppressed after that many hard or soft bounces within the window, or after one complaint. The planner
skips suppressed addresses and the sender checks again just before sending.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.config import Settings
from digest.delivery import ledger
from digest.mail import mailbox as inbox
from digest.mail.enhanced_status import classify, reported_about_recipient
from digest.records import utcnow
from digest.store import subscribers as subscriber_store
from digest.store.db import Database, among
from digest.store.models import Bounce, Delivery

log = logging.getLogger("digest.delivery.bounces")


@dataclass
class Event:
    """One recipient in a report: who, what kind, and the message of ours it is about (if known)."""

    email: str
    kind: str  # hard | soft | complaint
    source: str  # dsn | arf
    status: str | None = None
    detail: str | None = None
    message_id: str | None = None


def _address(value: str | None) -> str | None:
    """'rfc822; Ada@Example.org' or '<ada@example.org>' -> 'ada@example.org'."""
    if not value:
        return None
    kind, _, addr = str(value).rpartition(";")
    if kind and kind.strip().lower() not in ("rfc822", "rfc 822"):
        return None
    addr = addr.strip().strip("<>").strip()
    return addr.lower() if "@" in addr else None


def _original_headers(report: Message) -> Message | None:
    for part in report.get_payload():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            inner = part.get_payload()
            return inner[0] if isinstance(inner, list) and inner else None
        if ctype == "text/rfc822-headers":
            text = part.get_payload(decode=True).decode("utf-8", "replace")
            return HeaderParser(policy=email.policy.default).parsestr(text)
    return None


def _message_id(original: Message | None) -> str | None:
    """The Message-ID of the returned message (ours, if the report is about a digest)."""
    return str(original["Message-ID"]).strip() if original is not None and original["Message-ID"] else None


def _blocks(report: Message, ctype: str) -> Iterator[list[Message]]:
    """The header blocks of each part of this content type (message/delivery-status,
    message/feedback-report)."""
    for part in report.get_payload():
        if part.get_content_type() == ctype:
            yield part.get_payload() if isinstance(part.get_payload(), list) else []


def parse_delivery_status(report: Message, original: Message | None) -> list[Event]:
    """RFC 3464: a 'dsn' event per recipient block that reports a bounce (not delivered, relayed, expanded).

    The first block of a message/delivery-status part is about the message, each further one about one
    recipient: Original-Recipient, else Final-Recipient; Status and Action classify it (`classify`).
    """
    message_id = _message_id(original)
    events: list[Event] = []
    for blocks in _blocks(report, "message/delivery-status"):
        for block in blocks[1:]:
            addr = _address(block["Original-Recipient"]) or _address(block["Final-Recipient"])
            status = str(block["Status"] or "").strip() or None
            kind = classify(status, block["Action"])
            if addr and kind:
                detail = " ".join(str(block["Diagnostic-Code"] or "").split()) or None
                events.append(Event(addr, kind, "dsn", status, detail, message_id))
    return events


def parse_feedback_report(report: Message, original: Message | None) -> list[Event]:
    """RFC 5965 (ARF): an 'arf' complaint per message/feedback-report part, detail = Feedback-Type.

    The address is Original-Rcpt-To, else the first To of the returned message, else '' (the caller
    may still know it from the Message-ID).
    """
    message_id = _message_id(original)
    events: list[Event] = []
    for blocks in _blocks(report, "message/feedback-report"):
        if not blocks:
            continue
        fields = blocks[0]
        addr = _address(fields["Original-Rcpt-To"])
        if addr is None and original is not None:
            tos = getaddresses([str(original["To"] or "")])
            addr = _address(tos[0][1]) if tos else None
        events.append(Event(addr or "", "complaint", "arf", None,
                            str(fields["Feedback-Type"] or "abuse").strip(), message_id))
    return events


_REPORTS = {"delivery-status": parse_delivery_status, "feedback-report": parse_feedback_report}


def parse_report(msg: Message) -> list[Event]:
    """The bounces and complaints in one received message; [] if it is not such a report.

    A multipart/report goes to the parser of its report-type; any other message, or report-type, is [].
    """
    if msg.get_content_type() != "multipart/report":
        return []
    parse = _REPORTS.get(str(msg.get_param("report-type") or "").lower())
    return parse(msg, _original_headers(msg)) if parse is not None else []


# -------------------------------------------------------------------------------------- recording


def _key(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


def policy_reason(s: Session, settings: Settings, address: str, now: datetime) -> str | None:
    """Why this address must be suppressed now, or None."""
    mail = settings.mail
    counts = dict(s.execute(
        select(Bounce.kind, func.count()).where(
            Bounce.email == address, Bounce.created_at >= now - timedelta(days=mail.bounce_window_days)
        ).group_by(Bounce.kind)
    ).all())
    if counts.get("complaint"):
        return "complaint"
    if counts.get("hard", 0) >= mail.bounce_hard_limit:
        return "hard_bounce"
    if counts.get("soft", 0) >= mail.bounce_soft_limit:
        return "soft_bounce"
    return None


def record(s: Session, settings: Settings, *, address: str, kind: str, source: str, key: str,
           status: str | None = None, detail: str | None = None, delivery_id: int | None = None,
           now: datetime | None = None) -> tuple[bool, str | None]:
    """Store one bounce (once per `key`) and apply the policy.

    Returns (new, reason): whether it was not seen before, and the suppression reason if this
    bounce is what suppressed the address.
    """
    now = now or utcnow()
    address = address.strip().lower()
    key = _key(key)
    if s.scalar(select(Bounce.id).where(Bounce.event_key == key)) is not None:
        return False, None
    try:
        with s.begin_nested():
            s.add(Bounce(email=address, kind=kind, source=source, status=status,
                         detail=(detail or "")[:1000] or None,
                         delivery_id=delivery_id, event_key=key, created_at=now))
    except IntegrityError:  # the same report, recorded by someone else a moment ago
        return False, None
    if subscriber_store.suppression(s, address) is not None:
        return True, None
    reason = policy_reason(s, settings, address, now)
    if reason is None:
        return True, None
    if not subscriber_store.suppress(s, address, reason,
                                     f"{status or ''} {detail or ''}".strip()[:500] or None, now):
        return True, None
    log.info("address suppressed email=%s reason=%s", address, reason)
    return True, reason


# ------------------------------------------------------------------------------------- mailboxes


@dataclass
class BounceReport:
    messages: int = 0  # read from the mailbox
    not_reports: int = 0  # neither a DSN nor a complaint report (ignored)
    hard: int = 0
    soft: int = 0
    complaints: int = 0
    already: int = 0  # bounces recorded by an earlier run
    not_theirs: int = 0  # reports about the message, the sender or policy, not the recipient: not counted
    suppressed: list[str] = field(default_factory=list)  # addresses suppressed by this run

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (f"read {self.messages} messages: {self.hard} hard, {self.soft} soft, {self.complaints} "
                "complaints, "
                f"{self.already} already recorded, {self.not_reports} not bounce reports"
                + (f", {self.not_theirs} not about the recipient (not counted)" if self.not_theirs else "")
                + f"; suppressed {len(self.suppressed)} addresses")


def about(e: Event, ours: tuple[int, str] | None) -> tuple[int | None, str | None]:
    """The delivery and the address a report's event is booked against: only the address it names.
    The message it quotes (by Message-ID) is linked when it went to that address; a report that names
    no address (a complaint without one) is about whoever that message went to."""
    if ours is None:
        return None, e.email or None
    delivery_id, sent_to = ours
    if not e.email or e.email == sent_to.strip().lower():
        return delivery_id, sent_to
    log.warning("report for %s quotes message %s, which went to %s: booked against %s alone",
                e.email, e.message_id, sent_to, e.email)
    return None, e.email


def process_message(db: Database, settings: Settings, data: bytes, report: BounceReport) -> None:
    report.messages += 1
    try:
        msg = email.message_from_bytes(data, policy=email.policy.default)
        events = parse_report(msg)
        report_id = str(msg["Message-ID"] or "").strip() or hashlib.sha256(data).hexdigest()
    except Exception as err:  # untrusted input: never let one odd message stop the run
        log.warning("unreadable message in bounce mailbox: %s", err)
        events = []
    if not events:
        report.not_reports += 1
        return
    ours = ledger.by_message_ids(db, (e.message_id for e in events if e.message_id))
    with db.session() as s:
        for e in events:
            delivery_id, address = about(e, ours.get(e.message_id or ""))
            if not address:
                continue
            if e.source == "dsn" and not reported_about_recipient(e.status):
                log.info("report about %s not counted against them (%s: not about the recipient)", address,
                         e.status)
                report.not_theirs += 1
                continue
            new, reason = record(s, settings, address=address, kind=e.kind, source=e.source, status=e.status,
                                 detail=e.detail, delivery_id=delivery_id,
                                 key=f"{e.source}|{report_id}|{address}")
            if not new:
                report.already += 1
                continue
            if e.kind == "complaint":
                report.complaints += 1
            else:
                setattr(report, e.kind, getattr(report, e.kind) + 1)
            if reason:
                report.suppressed.append(address)


def process_mailbox(db: Database, settings: Settings, *, maildir: str | Path | None = None,
                    mbox: str | Path | None = None, report: BounceReport | None = None) -> BounceReport:
    """Read every message of a Maildir and/or mbox, record bounces and complaints, apply the policy.

    Counts are added to `report` when given (several mailboxes, one summary). The mailbox is only
    read; a path that is not a Maildir or an mbox file is a one-line ValueError (digest.mail.mailbox).
    """
    report = report if report is not None else BounceReport()
    for data in inbox.messages(maildir, mbox):  # read only: the bounce keys make a rerun count nothing twice
        process_message(db, settings, data, report)
    log.info("bounces processed: %s", report.summary())
    return report


# ------------------------------------------------------------------------------ the admin's view


def causes(s: Session, addresses: list[str]) -> dict[str, dict]:
    """The latest bounce or complaint recorded for each address (what suppressed it, when the policy
    did): its kind, source (smtp reply, dsn report, arf complaint), status, detail, when, and the
    delivery and Message-ID it was about."""
    out: dict[str, dict] = {}
    for b, message_id, period in s.execute(
            select(Bounce, Delivery.message_id, Delivery.period)
            .outerjoin(Delivery, Delivery.id == Bounce.delivery_id)
            .where(among(Bounce.email, sorted(set(addresses))), Bounce.kind != FORGIVEN)
            .order_by(Bounce.created_at.desc(), Bounce.id.desc())):
        out.setdefault(b.email, {"kind": b.kind, "source": b.source, "status": b.status, "detail": b.detail,
                                 "at": b.created_at, "message_id": message_id, "period": period})
    return out


FORGIVEN = "lifted"  # a bounce the admin set aside by lifting its address's suppression: never counted again


def forgive(s: Session, address: str) -> int:
    """Set aside the bounces recorded so far for an address whose suppression is lifted, so that the
    policy starts afresh (the rows stay, so a report read again is still recognised); returns how many."""
    return s.execute(update(Bounce).where(Bounce.email == address, Bounce.kind != FORGIVEN)
                     .values(kind=FORGIVEN)).rowcount

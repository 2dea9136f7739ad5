"""RFC 3463 enhanced status codes ("5.1.1"): whether a refusal or a report is a hard or a soft bounce
(`classify`), and who a refusal the relay gives while sending is about (`judge`).

One rule for the replies the mail transport gets while sending and for the delivery status
notifications read from a mailbox (digest.delivery.bounces).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# RFC 3463 details that are "persistent transient" even under a 5: mailbox full, system full, expired.
_SOFT_DETAILS = {"2.2", "3.1", "4.7"}
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


def classify(status: str | None, action: str | None = "failed") -> str | None:
    """'hard', 'soft', or None when the report is not a bounce (delivered, relayed, expanded)."""
    action = (action or "failed").strip().lower()
    if action in ("delivered", "relayed", "expanded"):
        return None
    if action == "delayed":
        return "soft"
    m = _STATUS.search(status or "")
    if m:
        if m.group(1) == "5" and f"{m.group(2)}.{m.group(3)}" not in _SOFT_DETAILS:
            return "hard"
        return "soft"
    code = (status or "").strip()[:1]
    return "hard" if code == "5" or not code else "soft"


# ------------------------------------------------------------------------- who a reply is about

# The stages of an SMTP conversation, as `judge` names them.
GREETING, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, END = (
    "greeting", "EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "end of data")
RECIPIENT, MESSAGE, RELAY = "recipient", "message", "relay"  # who a refusal is about (`Verdict.party`)


@dataclass(frozen=True)
class Verdict:
    """Who a refusal is about. `party`: RECIPIENT (this recipient's address or mailbox: counts toward
    their bounces, `bounce` says how), MESSAGE (this message: too big, content refused; it fails, and
    nobody bounced) or RELAY (the relay, the session, the sender, a relay-wide limit: nothing is said
    about the recipient or the message; the delivery goes back unspent). `temporary`: a 4xx."""

    party: str
    temporary: bool
    bounce: str | None = None  # "hard" | "soft", for RECIPIENT


# RFC 3463 subjects and details (class.subject.detail without the class) about the message itself
_MESSAGE_DETAILS = {"3.4", "2.3"}  # too big for the system; over the mailbox's administrative limit
# about the sender, whatever the stage: bad sender's mailbox syntax, bad sender's system address
_SENDER_DETAILS = {"1.7", "1.8"}
# a basic reply code without an enhanced one, at RCPT: what RFC 5321 says it means about the mailbox
_RCPT_BASIC = {550: "hard", 551: "hard", 553: "hard", 450: "soft", 552: "soft"}
# the enhanced code at the start of a reply's text: "550 5.1.1 No such user" or "5.1.1 No such user"
_LEADING = re.compile(r"^\s*(?:\d{3}[ -])?([245])\.(\d{1,3})\.(\d{1,3})\b")


def judge(stage: str, code: int, reply: str = "") -> Verdict:
    """Who a refusal (`code` and its text `reply`, e.g. "550 5.1.1 No such user") at `stage` is about.

    The one rule, for every stage and code: only a reply to RCPT, or to the end of data (one recipient
    per transaction, so it concerns that one), whose RFC 3463 subject is addressing (X.1.x, not the
    sender's X.1.7/X.1.8) or mailbox status (X.2.x, but X.2.3 is the message's size) is about the
    recipient: X.2.2 (mailbox full) and every 4xx as a soft bounce, the rest hard. Too big (X.3.4,
    X.2.3, or a bare 552 to MAIL or the end of data) and content (X.6.x) are about the message.
    Everything else is the relay's: 421, the mail system (X.3.x), routing (X.4.x), the protocol and
    session (X.5.x), security and policy (X.7.x, "relay access denied" included), undefined (X.0.x),
    any reply to the greeting, EHLO, AUTH, MAIL or DATA. Without an enhanced code, RCPT's 550, 551 and
    553 are hard, 450 and 552 soft; other bare codes are the relay's.
    """
    temporary = 400 <= code < 500
    if code == 421 or stage in (GREETING, EHLO, STARTTLS, AUTH):
        return Verdict(RELAY, temporary)
    m = _LEADING.match(reply)
    if m is not None:
        subject, detail = m.group(2), f"{m.group(2)}.{m.group(3)}"
        if detail in _MESSAGE_DETAILS or subject == "6":
            return Verdict(MESSAGE, temporary)
        if stage in (RCPT, END) and subject in ("1", "2") and detail not in _SENDER_DETAILS:
            return Verdict(RECIPIENT, temporary, "soft" if temporary else classify(f"5.{detail}"))
        return Verdict(RELAY, temporary)
    if code == 552 and stage in (MAIL, END):
        return Verdict(MESSAGE, temporary)
    if stage == RCPT and code in _RCPT_BASIC:
        return Verdict(RECIPIENT, temporary, _RCPT_BASIC[code])
    return Verdict(RELAY, temporary)


def reported_about_recipient(status: str | None) -> bool:
    """Whether a delivery status notification's `Status` (RFC 3464) is about the recipient, so that
    it may count toward their bounces: the rule of `judge` for a report, where the relay has taken
    the message and the destination's answer came back. Not about them: the message (X.3.4, X.2.3,
    X.6.x), the sender (X.1.7, X.1.8), security and policy (X.7.x: our reputation, a block list,
    DMARC), the protocol (X.5.x). Everything else (addressing, the mailbox, the destination's
    system, routing to it, expiry) is, as is a status without an enhanced code."""
    m = _STATUS.search(status or "")
    if m is None:
        return True
    subject, detail = m.group(2), f"{m.group(2)}.{m.group(3)}"
    return not (detail in _MESSAGE_DETAILS or detail in _SENDER_DETAILS or subject in ("5", "6", "7"))

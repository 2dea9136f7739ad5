"""RFC 3463 enhanced status codes ("5.1.1"): whether a refusal or a report is a hard or a soft bounce.

One rule for the replies the mail transport gets while sending and for the delivery status
notifications read from a mailbox (digest.delivery.bounces).
"""

from __future__ import annotations

import re

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

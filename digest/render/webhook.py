"""Text for chat messages (digest.delivery.channels: Slack, Discord, generic JSON): lengths as the
services count them (UTF-16 code units, so an emoji never tips a text over), cutting within a limit,
and links made safe for their markups. Each webhook kind's payload is in its channel's module.
"""

from __future__ import annotations

import re
from urllib.parse import quote


def units(text: str) -> int:
    """Length in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def cut(text: str, limit: int) -> str:
    """`text` within `limit` UTF-16 units, ending in "…" if it had to be cut."""
    if units(text) <= limit:
        return text
    out, used = [], 1  # room for the ellipsis
    for ch in text:
        used += units(ch)
        if used > limit:
            break
        out.append(ch)
    return "".join(out).rstrip() + "…"


def safe_url(url: str | None) -> str | None:
    """An http(s) link with the characters the markups treat specially percent-encoded; else None."""
    if not url or not re.match(r"https?://", url, re.I):
        return None
    return quote(url, safe=":/?#@!$&'*+,;=%~-._")

"""Text for chat messages (digest.delivery.channels: Slack, Discord, generic JSON): lengths as the
services count them (UTF-16 code units, so an emoji never tips a text over), cutting within a limit,
and links made safe for their markups. Each webhook kind's payload is in its channel's module.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

from digest.render.content import Entry


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


def entry_lines(e: Entry, escape: Callable[[str], str], link: Callable[[str | None, str], str],
                emphasis: str) -> list[str]:
    """A paper's lines under its title in a chat markup: the authors, the why-line in `emphasis`, the
    excerpt, then the meta line with the PDF and code links."""
    lines = []
    if e.authors:
        lines.append(escape(e.authors))
    if e.why:
        lines.append(f"{emphasis}{escape(e.why)}{emphasis}")
    if e.excerpt:
        lines.append(escape(e.excerpt))
    extras = [escape(e.meta)] if e.meta else []
    extras += [link(u, label) for u, label in ((e.pdf_url, "PDF"), (e.code_url, "Code")) if safe_url(u)]
    if extras:
        lines.append(" · ".join(extras))
    return lines

"""Slack: an edition as incoming-webhook JSON (Block Kit), one section per pick with its why-line.

Slack's documented limits are kept by construction: at most 50 blocks; a section's mrkdwn text at
most 3,000 characters. Titles and abstracts are untrusted: Slack's three escapes (&, <, >), so a
title can neither format the message nor mention anyone (`<!channel>`). Papers that do not fit are
counted in a last line that links to the edition in the browser.
"""

from __future__ import annotations

from collections.abc import Sequence

from digest.delivery.channels.webhook import WebhookChannel
from digest.render import DigestContent, Entry
from digest.render.webhook import cut, entry_lines, safe_url, units

SLACK_MAX_BLOCKS = 50
SLACK_MAX_TEXT = 3000

def slack_escape(text: str) -> str:
    """Slack's three escapes (&, <, >): nothing in the text can become a link, a mention or a command."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_link(url: str | None, label: str) -> str:
    link = safe_url(url)
    label = slack_escape(label).replace("|", "¦")
    return f"<{slack_escape(link)}|{label}>" if link else label


def _slack_entry(e: Entry) -> str:
    lines = [f"*{e.rank}. {slack_link(e.url, e.title)}*", *entry_lines(e, slack_escape, slack_link, "_")]
    return "\n".join(lines)


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, SLACK_MAX_TEXT)}}


def _pack(paragraphs: Sequence[str], blocks: int, limit: int) -> tuple[list[str], int]:
    """One paragraph per block if they fit in `blocks`; else paragraphs joined into blocks of at most
    `limit`. Returns the texts and how many paragraphs did not fit at all."""
    if len(paragraphs) <= blocks:
        return [cut(p, limit) for p in paragraphs], 0
    texts: list[str] = []
    for i, p in enumerate(cut(p, limit) for p in paragraphs):
        if texts and units(texts[-1]) + 2 + units(p) <= limit:
            texts[-1] += "\n\n" + p
        elif len(texts) < blocks:
            texts.append(p)
        else:
            return texts, len(paragraphs) - i
    return texts, 0


def slack(content: DigestContent) -> dict:
    """Incoming-webhook JSON for Slack: `text` (the notification's fallback) and section blocks."""
    footer = " · ".join(slack_link(u, label) for u, label in (
        (content.archive_url, "View in browser"), (content.prefs_url, "Preferences"),
        (content.unsubscribe_url, "Unsubscribe")))
    head = [_section(f"*{slack_escape(content.heading)}* · {slack_escape(content.date_label)}\n"
                     f"{slack_escape(content.intro)}"), {"type": "divider"}]
    trending_head = [_section("*Trending overall*")] if content.trending else []
    room = SLACK_MAX_BLOCKS - len(head) - len(trending_head) - 2  # the footer, and a "more" line
    paragraphs = [_slack_entry(e) for e in content.picks]
    hot = [f"{e.rank}. {slack_link(e.url, e.title)}" + (f" · {slack_escape(e.meta)}" if e.meta else "")
           for e in content.trending]
    picks, left = _pack(paragraphs, max(1, room - (1 if hot else 0)), SLACK_MAX_TEXT)
    blocks = head + [_section(t) for t in picks]
    if hot:
        packed, hot_left = _pack(["\n".join(hot)], 1, SLACK_MAX_TEXT)
        blocks += trending_head + [_section(t) for t in packed]
        left += hot_left
    if left:
        blocks.append(_section(f"…and {left} more: {slack_link(content.archive_url, 'see them all')}"))
    blocks.append(_section(footer))
    return {"text": cut(slack_escape(content.subject), SLACK_MAX_TEXT), "blocks": blocks[:SLACK_MAX_BLOCKS]}


class Slack(WebhookChannel):
    name = "slack"

    def payload(self, content: DigestContent, message_id: str) -> dict:
        return slack(content)

"""An edition as a chat message: Slack blocks, Discord embeds, or a documented generic JSON.

Built from the same `DigestContent` as the email (digest.render.compose.edition_content): the same
picks in the same order, the same why-lines, the same signed archive, preferences and unsubscribe
links. Titles and abstracts are untrusted: escaped for each service's markup, so a title can neither
format the message nor mention anyone (Slack `<!channel>`, Discord `@everyone`).

The services' documented limits are kept by construction (lengths in UTF-16 code units, which is
how both count, so an emoji never tips a text over):

- Slack (Block Kit): at most 50 blocks; a section's mrkdwn text at most 3,000 characters.
- Discord (Execute Webhook): `content` at most 2,000 characters; at most 10 embeds; an embed title at
  most 256, a description at most 4,096; all embeds' texts together at most 6,000.

Papers that do not fit are counted in a last line that links to the edition in the browser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from urllib.parse import quote

from digest.render import DigestContent, Entry

SLACK_MAX_BLOCKS = 50
SLACK_MAX_TEXT = 3000
DISCORD_MAX_CONTENT = 2000
DISCORD_MAX_EMBEDS = 10
DISCORD_MAX_TITLE = 256
DISCORD_MAX_DESCRIPTION = 4096
DISCORD_MAX_TOTAL = 6000
DISCORD_COLOR = 0xFFD21E  # the Hugging Face yellow
GENERIC_VERSION = 1


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


# ------------------------------------------------------------------------------------------- Slack


def slack_escape(text: str) -> str:
    """Slack's three escapes (&, <, >): nothing in the text can become a link, a mention or a command."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_link(url: str | None, label: str) -> str:
    link = safe_url(url)
    label = slack_escape(label).replace("|", "¦")
    return f"<{slack_escape(link)}|{label}>" if link else label


def _slack_entry(e: Entry) -> str:
    lines = [f"*{e.rank}. {slack_link(e.url, e.title)}*"]
    if e.authors:
        lines.append(slack_escape(e.authors))
    if e.why:
        lines.append(f"_{slack_escape(e.why)}_")
    if e.excerpt:
        lines.append(slack_escape(e.excerpt))
    extras = [slack_escape(e.meta)] if e.meta else []
    extras += [slack_link(u, label) for u, label in ((e.pdf_url, "PDF"), (e.code_url, "Code")) if safe_url(u)]
    if extras:
        lines.append(" · ".join(extras))
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


# ----------------------------------------------------------------------------------------- Discord

_MARKDOWN = re.compile(r"([\\*_~`|\[\]()<>#])")


def discord_escape(text: str) -> str:
    """Discord markdown characters escaped (a title shows as typed, never as formatting or a link)."""
    return _MARKDOWN.sub(r"\\\1", text)


def discord_link(url: str | None, label: str) -> str:
    link = safe_url(url)
    return f"[{discord_escape(label)}]({link.replace(')', '%29')})" if link else discord_escape(label)


def _discord_entry(e: Entry) -> dict:
    lines = []
    if e.authors:
        lines.append(discord_escape(e.authors))
    if e.why:
        lines.append(f"*{discord_escape(e.why)}*")
    if e.excerpt:
        lines.append(discord_escape(e.excerpt))
    extras = [discord_escape(e.meta)] if e.meta else []
    extras += [discord_link(u, label) for u, label in ((e.pdf_url, "PDF"), (e.code_url, "Code")) if safe_url(u)]
    if extras:
        lines.append(" · ".join(extras))
    embed = {"title": cut(f"{e.rank}. {e.title}", DISCORD_MAX_TITLE),
             "description": cut("\n".join(lines), DISCORD_MAX_DESCRIPTION), "color": DISCORD_COLOR}
    if safe_url(e.url):
        embed["url"] = safe_url(e.url)
    return embed


def _embed_units(embed: dict) -> int:
    return units(embed.get("title", "")) + units(embed.get("description", ""))


def discord(content: DigestContent) -> dict:
    """Execute-webhook JSON for Discord: `content` (the subject), embeds (a head, one per pick, then a
    list of what else there is), and no mentions allowed."""
    footer = " · ".join(discord_link(u, label) for u, label in (
        (content.archive_url, "View in browser"), (content.prefs_url, "Preferences"),
        (content.unsubscribe_url, "Unsubscribe")))
    head = {"title": cut(content.heading, DISCORD_MAX_TITLE),
            "description": cut(f"{discord_escape(content.date_label)}\n{discord_escape(content.intro)}\n\n{footer}",
                               DISCORD_MAX_DESCRIPTION), "color": DISCORD_COLOR}
    if safe_url(content.archive_url):
        head["url"] = safe_url(content.archive_url)
    embeds, total = [head], _embed_units(head)
    tail_reserve = 600  # room kept for the last embed: what did not fit, trending, the "more" link
    rest: list[Entry] = []
    for e in content.picks:
        embed = _discord_entry(e)
        if not rest and len(embeds) < DISCORD_MAX_EMBEDS - 1 and total + _embed_units(embed) <= DISCORD_MAX_TOTAL - tail_reserve:
            embeds.append(embed)
            total += _embed_units(embed)
        else:
            rest.append(e)
    lines = [f"{e.rank}. {discord_link(e.url, e.title)}" for e in rest]
    if content.trending:
        lines += ["**Trending overall**"] + [f"{e.rank}. {discord_link(e.url, e.title)}" for e in content.trending]
    if lines:
        title = "More papers" if rest else "Trending overall"
        budget = min(DISCORD_MAX_DESCRIPTION, DISCORD_MAX_TOTAL - total - units(title)) - 80
        shown: list[str] = []
        for line in lines:
            if units("\n".join([*shown, line])) > budget:
                break
            shown.append(line)
        if len(shown) < len(lines):
            shown.append(f"…and {len(lines) - len(shown)} more: {discord_link(content.archive_url, 'see them all')}")
        embeds.append({"title": title, "description": "\n".join(shown), "color": DISCORD_COLOR})
    return {"content": cut(content.subject, DISCORD_MAX_CONTENT), "embeds": embeds,
            "allowed_mentions": {"parse": []}}


# ----------------------------------------------------------------------------------------- generic


def _generic_entry(e: Entry) -> dict:
    return {"rank": e.rank, "title": e.title, "url": e.url, "authors": e.authors, "why": e.why,
            "excerpt": e.excerpt, "meta": e.meta, "pdf_url": e.pdf_url, "code_url": e.code_url}


def generic(content: DigestContent, message_id: str = "") -> dict:
    """The documented generic JSON (README "Team channels"): plain fields, no markup, nothing cut."""
    return {"version": GENERIC_VERSION, "id": message_id, "subject": content.subject, "heading": content.heading,
            "intro": content.intro, "date": content.date_label, "site": content.site_name,
            "frequency": content.frequency_label, "archive_url": content.archive_url,
            "preferences_url": content.prefs_url, "unsubscribe_url": content.unsubscribe_url,
            "picks": [_generic_entry(e) for e in content.picks],
            "trending": [_generic_entry(e) for e in content.trending]}


def payload(kind: str, content: DigestContent, message_id: str = "") -> dict:
    if kind == "slack":
        return slack(content)
    if kind == "discord":
        return discord(content)
    if kind == "generic":
        return generic(content, message_id)
    raise ValueError(f"unknown webhook kind {kind!r}")


def payload_bytes(kind: str, content: DigestContent, message_id: str = "") -> bytes:
    return json.dumps(payload(kind, content, message_id), ensure_ascii=False).encode("utf-8")

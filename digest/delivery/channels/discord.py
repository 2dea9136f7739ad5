"""Discord: an edition as execute-webhook JSON: `content` (the subject), one embed per pick, a last
embed with what else there is, and no mentions allowed.

Discord's documented limits are kept by construction: `content` at most 2,000 characters; at most 10
embeds; an embed title at most 256, a description at most 4,096; all embeds' texts together at most
6,000. Titles are untrusted: markdown characters escaped (a title shows as typed, never as
formatting, a link or `@everyone`).
"""

from __future__ import annotations

import re

from digest.delivery.channels.webhook import WebhookChannel
from digest.render import DigestContent, Entry
from digest.render.webhook import cut, entry_lines, safe_url, units

DISCORD_MAX_CONTENT = 2000
DISCORD_MAX_EMBEDS = 10
DISCORD_MAX_TITLE = 256
DISCORD_MAX_DESCRIPTION = 4096
DISCORD_MAX_TOTAL = 6000
DISCORD_COLOR = 0xFFD21E  # the Hugging Face yellow

_MARKDOWN = re.compile(r"([\\*_~`|\[\]()<>#])")


def discord_escape(text: str) -> str:
    """Discord markdown characters escaped (a title shows as typed, never as formatting or a link)."""
    return _MARKDOWN.sub(r"\\\1", text)


def discord_link(url: str | None, label: str) -> str:
    link = safe_url(url)
    return f"[{discord_escape(label)}]({link.replace(')', '%29')})" if link else discord_escape(label)


def _discord_entry(e: Entry) -> dict:
    lines = entry_lines(e, discord_escape, discord_link, "*")
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
            "description": cut(f"{discord_escape(content.date_label)}\n{discord_escape(content.intro)}"
                               f"\n\n{footer}",
                               DISCORD_MAX_DESCRIPTION), "color": DISCORD_COLOR}
    if safe_url(content.archive_url):
        head["url"] = safe_url(content.archive_url)
    embeds, total = [head], _embed_units(head)
    tail_reserve = 600  # room kept for the last embed: what did not fit, trending, the "more" link
    rest: list[Entry] = []
    for e in content.picks:
        embed = _discord_entry(e)
        room = total + _embed_units(embed) <= DISCORD_MAX_TOTAL - tail_reserve
        if not rest and len(embeds) < DISCORD_MAX_EMBEDS - 1 and room:
            embeds.append(embed)
            total += _embed_units(embed)
        else:
            rest.append(e)
    lines = [f"{e.rank}. {discord_link(e.url, e.title)}" for e in rest]
    if content.trending:
        lines += ["**Trending overall**"] + [f"{e.rank}. {discord_link(e.url, e.title)}"
                                             for e in content.trending]
    if lines:
        title = "More papers" if rest else "Trending overall"
        budget = min(DISCORD_MAX_DESCRIPTION, DISCORD_MAX_TOTAL - total - units(title)) - 80
        shown: list[str] = []
        for line in lines:
            if units("\n".join([*shown, line])) > budget:
                break
            shown.append(line)
        if len(shown) < len(lines):
            shown.append(f"…and {len(lines) - len(shown)} more: "
                         f"{discord_link(content.archive_url, 'see them all')}")
        embeds.append({"title": title, "description": "\n".join(shown), "color": DISCORD_COLOR})
    return {"content": cut(content.subject, DISCORD_MAX_CONTENT), "embeds": embeds,
            "allowed_mentions": {"parse": []}}


class Discord(WebhookChannel):
    name = "discord"

    def payload(self, content: DigestContent, message_id: str) -> dict:
        return discord(content)

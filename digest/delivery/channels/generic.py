"""A generic JSON receiver: the documented JSON (README "Team channels"): plain fields, no markup,
nothing cut."""

from __future__ import annotations

from digest.delivery.channels.webhook import WebhookChannel
from digest.render import DigestContent, Entry

GENERIC_VERSION = 1

def _generic_entry(e: Entry) -> dict:
    return {"rank": e.rank, "title": e.title, "url": e.url, "authors": e.authors, "why": e.why,
            "excerpt": e.excerpt, "meta": e.meta, "pdf_url": e.pdf_url, "code_url": e.code_url}


def generic(content: DigestContent, message_id: str = "") -> dict:
    """The documented generic JSON (README "Team channels"): plain fields, no markup, nothing cut."""
    return {"version": GENERIC_VERSION, "id": message_id, "subject": content.subject,
            "heading": content.heading,
            "intro": content.intro, "date": content.date_label, "site": content.site_name,
            "frequency": content.frequency_label, "archive_url": content.archive_url,
            "preferences_url": content.prefs_url, "unsubscribe_url": content.unsubscribe_url,
            "picks": [_generic_entry(e) for e in content.picks],
            "trending": [_generic_entry(e) for e in content.trending]}


class Generic(WebhookChannel):
    name = "generic"

    def payload(self, content: DigestContent, message_id: str) -> dict:
        return generic(content, message_id)

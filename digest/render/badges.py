"""Artefact badges: what a paper comes with, where its source says so (code and its GitHub stars, a
project page, an accepted venue from the arXiv comment). Made once per paper per run, with the rest of
its entry (`compose.Entries`); a badge is never empty and links only to a URL that passes `web_url`."""

from __future__ import annotations

import re

from digest.records import Paper, web_url
from digest.render import Badge

MAX_VENUE = 40  # characters of a venue name a badge shows; longer ones are cut at a word

# "Accepted at NeurIPS 2024", "accepted for publication in IEEE TPAMI", "To appear in ICML 2024",
# "Published as a conference paper at ICLR 2025": the verb, then the venue up to the end of its clause.
_VENUE = re.compile(
    r"\b(?P<verb>accepted|to appear|published|presented)"
    r"(?:\s+(?:as\s+(?:an?\s+)?[\w -]{0,40}?paper|for\s+(?:publication|presentation)))?"
    r"\s+(?:at|in|to|by|on)\s+(?:the\s+)?(?P<venue>(?:Proc\.|[^.;,\n])+)",
    re.I)
_ACRONYM = re.compile(r"\(([A-Z][\w&'-]*(?:[ -]\w+){0,3})\)")  # "... Systems (NeurIPS 2024)"
_LABEL = {"accepted": "Accepted at", "to appear": "To appear in", "published": "Published in",
          "presented": "Presented at"}


def compact_count(n: int) -> str:
    """999, 1.2k, 12k, 123k, 1.2M: rounded down, so a count is never overstated."""
    if n < 1000:
        return str(n)
    for size, unit in ((1_000_000, "M"), (1_000, "k")):
        if n >= size:
            whole = n // size
            if whole >= 10:
                return f"{whole}{unit}"
            tenths = n * 10 // size
            return f"{tenths // 10}.{tenths % 10}{unit}".replace(".0" + unit, unit)
    return str(n)  # unreachable


def venue(comment: str | None) -> str | None:
    """"Accepted at NeurIPS 2024" from an arXiv comment that says so, compactly; None otherwise
    (page counts, "under review", anything else a comment may say is not shown)."""
    if not comment:
        return None
    m = _VENUE.search(" ".join(comment.split()))
    if not m:
        return None
    name = m.group("venue").strip(" :-–—")
    short = _ACRONYM.search(name)
    if short and len(name) > MAX_VENUE:
        name = short.group(1)
    if name.count("(") > name.count(")"):  # a clause cut inside brackets: drop the open bracket's part
        name = name[: name.rfind("(")] if name.rfind("(") > 0 else name[1:]
    name = name.strip(" :-–—")
    if len(name) > MAX_VENUE:
        name = name[:MAX_VENUE].rsplit(" ", 1)[0].rstrip(" (-–—:") + "…"
    if not re.search(r"\w", name):
        return None
    return f"{_LABEL[m.group('verb').lower()]} {name}"


def badges(p: Paper) -> tuple[Badge, ...]:
    """A paper's badges, in a fixed order: code (with its stars), project page, venue."""
    out: list[Badge] = []
    stars = f"★ {compact_count(p.github_stars)}" if p.github_stars else None
    code = web_url(p.code_url)
    if code:
        out.append(Badge(f"Code {stars}" if stars else "Code", code))
    elif stars:
        out.append(Badge(f"{stars} GitHub stars"))
    project = web_url(p.project_url)
    if project and project != code:
        out.append(Badge("Project page", project))
    where = venue(p.comment)
    if where:
        out.append(Badge(where))
    return tuple(out)

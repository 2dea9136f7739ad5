"""Untrusted text in, clean listing out: one place where every source's output is normalised.

Titles and abstracts come from the network and from files nobody checked. Everything a source hands
over passes through `clean_listing`, which is idempotent, never raises on odd input, and returns
None for what cannot be a paper (the caller counts it as rejected).
"""

from __future__ import annotations

import html
import re
import unicodedata
from datetime import UTC, datetime

from digest.records import Cleaned, Listing, key_of, title_key, web_url  # noqa: F401 (the sources' dedupe keys)

MAX_TITLE = 500
MAX_ABSTRACT = 10_000
MAX_SUMMARY = 2_000
MAX_COMMENT = 1_000
MAX_AUTHORS = 100
MAX_AUTHOR = 200
MAX_CATEGORIES = 20
MAX_INT = 2_000_000_000  # fits a 32-bit INTEGER column on every backend

# Old style ("astro-ph/0601001", "math.GT/0309136") and new style ("2410.17243", "0704.0001").
_ARXIV_RE = re.compile(
    r"(?:arxiv:)?(?P<id>(?:[a-z][a-z\-]{0,19}(?:\.[A-Z]{2})?/\d{7})|(?:\d{4}\.\d{4,5}))(?:v(?P<v>\d{1,4}))?",
    re.IGNORECASE,
)
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # C0 but tab, LF, CR; and DEL: a space each
_WS = re.compile(r"\s+")
_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")  # terminal escapes: colours, cursor moves
_SCRIPT = re.compile(r"<(script|style)\b[^>]*>.*?(</\1\s*>|$)", re.IGNORECASE | re.DOTALL)
_COMMENT = re.compile(r"<!--.*?(-->|$)", re.DOTALL)
# Only real HTML/MathML/SVG tag names, so "P<NP and x>y" in a math title survives.
_TAG = re.compile(
    r"</?(?:a|abbr|b|big|blink|blockquote|body|br|button|center|cite|code|del|div|em|embed|font|form|"
    r"h[1-6]|head|hr|html|i|iframe|img|input|ins|kbd|li|link|mark|marquee|math|meta|mi|mn|mo|mrow|msub|"
    r"msubsup|msup|object|ol|p|pre|q|s|small|source|span|strike|strong|sub|sup|svg|table|tbody|td|"
    r"textarea|th|title|tr|tt|u|ul|var|video|audio)\b[^<>]*/?>",
    re.IGNORECASE,
)


_LINE_SPACE = re.compile(r"[\t\n\r]")


def _may_be_markup(text: str) -> bool:
    """Whether `markup=True` may change an ASCII text: an entity or a tag."""
    return "&" in text or "<" in text


def clean_text(value: object, limit: int, *, markup: bool = False) -> str:
    """One line of plain text: NFC, no control or format characters, whitespace collapsed, capped.

    `markup=True` also unescapes entities and strips HTML tags (for titles). Never raises.
    """
    if not isinstance(value, str):
        return ""
    text = value[: limit * 4 + 64]  # a 5 MB abstract is cut before any regex runs over it
    if (text.isprintable() and "  " not in text and not (markup and _may_be_markup(text))
            and (text.isascii() or unicodedata.is_normalized("NFC", text))):
        return cap(text.strip(), limit)  # already one clean line (most text): `cleaned` would not change it
    return cap(cleaned(text, markup), limit)


def cleaned(text: str, markup: bool = False) -> str:
    """`clean_text`'s every step, uncapped (the reference its shortcut for plain ASCII is checked against)."""
    text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates (PostgreSQL refuses them)
    if markup:
        text = html.unescape(text)
        text = _COMMENT.sub(" ", _SCRIPT.sub(" ", text))
        text = _TAG.sub(" ", text)
    text = _CONTROL_CHARS.sub(" ", _ANSI.sub("", text))
    # format characters: zero-width, bidi overrides (a reversed title is a phishing trick)
    if not text.isprintable() and not _LINE_SPACE.sub(" ", text).isprintable():  # else it has none of these
        text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Co", "Cs", "Cc")
                       or ch in "\t\n\r")
    return unicodedata.normalize("NFC", _WS.sub(" ", text)).strip()


def cap(text: str, limit: int) -> str:
    """Cut at a word boundary and mark the cut with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.8:
        cut = cut[:space]
    return cut.rstrip() + "…"


def parse_arxiv_id(value: object) -> tuple[str, int | None] | None:
    """("2104.12255", 1) from "2104.12255v1", "arXiv:2104.12255v1" or "http://arxiv.org/abs/2104.12255v1"."""
    if not isinstance(value, str) or len(value) > 300:
        return None
    value = value.strip()
    for prefix in ("/abs/", "/pdf/"):
        if prefix in value:
            value = value.split(prefix, 1)[1]
    m = _ARXIV_RE.fullmatch(value.removesuffix(".pdf"))
    if not m:
        return None
    ident = m["id"]
    if "/" in ident:
        archive, num = ident.split("/", 1)
        name, _, subject = archive.partition(".")  # "math.GT": archive lower case, subject class upper
        ident = f"{name.lower()}.{subject.upper()}/{num}" if subject else f"{name.lower()}/{num}"
    return ident, int(m["v"]) if m["v"] else None


def clean_url(value: object) -> str | None:
    """An http(s) URL without whitespace or control characters, else None (no javascript: links):
    `records.web_url`, the one URL rule that the renderer checks again before making a link."""
    return web_url(value)


def clean_int(value: object) -> int | None:
    """A non-negative int that fits the column; bools, floats with fractions and strings are refused."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    if not isinstance(value, int):
        return None
    return max(0, min(value, MAX_INT))


def parse_datetime(value: object) -> datetime | None:
    """An aware UTC datetime from ISO 8601 text ("2024-10-22T17:59:30.000Z") or a datetime."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str) and 8 <= len(value) <= 40:
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        dt = dt.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return dt if 1990 <= dt.year <= 2200 else None


def _str_list(values: object, limit: int, item_limit: int) -> list[str]:
    if not isinstance(values, list | tuple):
        return []
    out: list[str] = []
    for v in values:
        text = clean_text(v, item_limit, markup=True)
        if text and text not in out:
            out.append(text)
        if len(out) >= limit:
            break
    return out


def clean_listing(listing: Listing) -> Cleaned | None:
    """The listing with every field normalised, or None if it cannot be a paper (no usable title)."""
    if not isinstance(listing, Listing):
        return None
    title = clean_text(listing.title, MAX_TITLE, markup=True)
    key = title_key(title)
    if not key:  # arXiv 2104.12255 is titled "0"
        return None
    arxiv_id, version = None, clean_int(listing.version) or None
    parsed = parse_arxiv_id(listing.arxiv_id) if listing.arxiv_id else None
    if parsed:
        arxiv_id = parsed[0]
        version = version or parsed[1]
    summary = clean_text(listing.ai_summary, MAX_SUMMARY) or None
    comment = clean_text(listing.comment, MAX_COMMENT) or None
    doi = clean_text(listing.doi, 200) or None
    return Cleaned(
        key=key,
        title=title,
        abstract=clean_text(listing.abstract, MAX_ABSTRACT),
        source=clean_text(listing.source, 100),
        arxiv_id=arxiv_id,
        authors=_str_list(listing.authors, MAX_AUTHORS, MAX_AUTHOR),
        published_at=parse_datetime(listing.published_at),
        url=clean_url(listing.url),
        pdf_url=clean_url(listing.pdf_url),
        code_url=clean_url(listing.code_url),
        project_url=clean_url(listing.project_url),
        thumbnail_url=clean_url(listing.thumbnail_url),
        upvotes=clean_int(listing.upvotes),
        num_comments=clean_int(listing.num_comments),
        github_stars=clean_int(listing.github_stars),
        ai_summary=summary,
        categories=_str_list(listing.categories, MAX_CATEGORIES, 50),
        doi=doi,
        comment=comment,
        version=version,
        withdrawn=listing.withdrawn is True,
        entry_id=clean_text(listing.entry_id, 200) or None,
    )

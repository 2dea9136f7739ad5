"""Email rendering: MJML -> HTML -> inlined CSS -> Jinja, compiled once per process.

`Renderer()` compiles `templates/digest.mjml` once (MJML with the `mjml` package, CSS inlined by
premailer) into a Jinja template; `Renderer.render(content)` then fills it per subscriber with Jinja
alone. Jinja tags are swapped for inert placeholders while MJML and premailer run, so neither of
them can mangle or escape them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, fields
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jinja2
from mjml import mjml_to_html
from premailer import Premailer

TEMPLATE_DIR = resources.files("digest") / "templates"
GMAIL_CLIP_BYTES = 102 * 1024
HTML_BUDGET_BYTES = 96 * 1024  # leave room under Gmail's clipping size for headers/encoding drift

_JINJA_TAG = re.compile(r"{{.*?}}|{%.*?%}", re.S)


@dataclass(frozen=True)
class Badge:
    """One artefact badge under a paper ("Code ★ 1.2k", "Project page", "Accepted at NeurIPS 2024"):
    never empty; `url`, when set, has passed `records.web_url`."""

    text: str
    url: str | None = None


@dataclass
class Entry:
    """One paper as the template shows it; every string is untrusted and escaped by Jinja."""

    rank: int
    title: str
    url: str
    authors: str = ""
    excerpt: str = ""
    why: str = ""
    meta: str = ""
    pdf_url: str | None = None
    code_url: str | None = None
    badges: tuple[Badge, ...] = ()
    more_url: str | None = None
    less_url: str | None = None


@dataclass
class DigestContent:
    subject: str
    preheader: str
    heading: str
    intro: str
    date_label: str
    site_name: str
    email: str
    frequency_label: str
    archive_url: str
    prefs_url: str
    unsubscribe_url: str
    feed_url: str = ""  # the subscriber's private Atom feed ("" in a preview of made-up topics)
    picks: list[Entry] = field(default_factory=list)
    trending: list[Entry] = field(default_factory=list)
    more_count: int = 0


@dataclass
class Rendered:
    subject: str
    html: str
    text: str
    shown: int  # picks shown; the rest are counted in the "more on the web" line


def _protect(source: str) -> tuple[str, list[str]]:
    tags: list[str] = []

    def keep(m: re.Match) -> str:
        tags.append(m.group(0))
        return f"xjinjatag{len(tags) - 1}x"

    return _JINJA_TAG.sub(keep, source), tags


def _restore(html: str, tags: list[str]) -> str:
    return re.sub(r"xjinjatag(\d+)x", lambda m: tags[int(m.group(1))], html)


def compile_mjml(source: str) -> str:
    """MJML source with Jinja tags -> inlined HTML source with the same Jinja tags."""
    protected, tags = _protect(source)
    result = mjml_to_html(protected)
    if result.errors:
        raise ValueError(f"MJML errors: {result.errors}")
    inlined = Premailer(
        result.html,
        keep_style_tags=True,
        disable_validation=True,
        allow_network=False,
        cssutils_logging_level=logging.CRITICAL,
    ).transform()
    return _restore(inlined, tags)


class Renderer:
    """Holds the compiled templates; create one per process and reuse it for every subscriber."""

    def __init__(self, template_dir: str | Path | None = None, html_budget: int = HTML_BUDGET_BYTES):
        directory = Path(str(template_dir or TEMPLATE_DIR))
        self.html_budget = html_budget
        self.html_source = compile_mjml((directory / "digest.mjml").read_text(encoding="utf-8"))
        html_env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
        text_env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        text_env.filters["wordwrap"] = _wordwrap(text_env)
        self._html = html_env.from_string(self.html_source)
        self._text = text_env.from_string((directory / "digest.txt").read_text(encoding="utf-8"))

    def render(self, content: DigestContent) -> Rendered:
        """Fill both parts; past the HTML budget show fewer papers and count the rest as 'more'."""
        ctx = {f.name: getattr(content, f.name) for f in fields(content)}  # entries stay objects
        picks = ctx["picks"]
        shown = len(picks)
        html = self._html.render(ctx)
        while len(html.encode()) > self.html_budget and shown > 1:
            size = len(html.encode())
            shown = max(1, min(shown - 1, int(shown * self.html_budget / size)))
            ctx = {**ctx, "picks": picks[:shown], "more_count": content.more_count + len(picks) - shown}
            html = self._html.render(ctx)
        return Rendered(subject=content.subject, html=html, text=self._text.render(ctx), shown=shown)


def _wordwrap(env: jinja2.Environment):
    """Jinja's wordwrap, remembered: the same excerpts are wrapped for thousands of digests a run."""
    wrap = jinja2.filters.do_wordwrap

    @lru_cache(maxsize=16384)
    def wordwrap(s: str, width: int = 79) -> str:
        return wrap(env, s, width)

    return wordwrap


@lru_cache(maxsize=4)
def default_renderer(template_dir: str | None = None) -> Renderer:
    """The per-process renderer (compiling MJML once, however many digests are rendered)."""
    return Renderer(template_dir)

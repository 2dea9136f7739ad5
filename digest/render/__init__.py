"""Email rendering: MJML -> HTML -> inlined CSS -> Jinja, compiled once per process.

`Renderer()` compiles `templates/digest.mjml` once (MJML with the `mjml` package, CSS inlined by
premailer) into a Jinja template; `Renderer.render(content)` then fills it per subscriber with Jinja
alone. Jinja tags are swapped for inert placeholders while MJML and premailer run, so neither of
them can mangle or escape them. Each paper's entry and the page around the entries are rendered
once and filled per subscriber (digest.render.render_once), so a template is checked against that
contract when it is compiled.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jinja2
from markupsafe import escape
from mjml import mjml_to_html
from premailer import Premailer

from digest.render.content import Badge, DigestContent, Entry, Rendered
from digest.render.render_once import CONTENT_FIELDS, Layout, check_template, remembered_wordwrap, utf8_size

__all__ = ["GMAIL_CLIP_BYTES", "HTML_BUDGET_BYTES", "TEMPLATE_DIR", "Badge", "DigestContent", "Entry",
           "Rendered",
           "Renderer", "compile_mjml", "default_renderer"]

TEMPLATE_DIR = resources.files("digest") / "templates"
GMAIL_CLIP_BYTES = 102 * 1024
HTML_BUDGET_BYTES = 96 * 1024  # leave room under Gmail's clipping size for headers/encoding drift

_JINJA_TAG = re.compile(r"{{.*?}}|{%.*?%}", re.S)


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
        mjml_source = (directory / "digest.mjml").read_text(encoding="utf-8")
        text_source = (directory / "digest.txt").read_text(encoding="utf-8")
        html_env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
        text_env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined,
                                      keep_trailing_newline=True)
        text_env.filters["wordwrap"] = remembered_wordwrap(text_env)
        check_template(html_env, mjml_source, "digest.mjml")  # the render-once contract, before anything runs
        check_template(text_env, text_source, "digest.txt")
        self.html_source = compile_mjml(mjml_source)
        self._html = Layout(html_env, self.html_source, lambda v: str(escape(v)))
        self._text = Layout(text_env, text_source, str)

    def render(self, content: DigestContent) -> Rendered:
        """Fill both parts; past the HTML budget show fewer papers and count the rest as 'more'."""
        ctx = {name: getattr(content, name) for name in CONTENT_FIELDS}  # entries stay objects
        picks = ctx["picks"]
        shown = len(picks)
        html, parts = self._html.render(ctx)
        while (size := utf8_size(parts)) > self.html_budget and shown > 1:
            shown = max(1, min(shown - 1, int(shown * self.html_budget / size)))
            ctx = {**ctx, "picks": picks[:shown], "more_count": content.more_count + len(picks) - shown}
            html, parts = self._html.render(ctx)
        text, text_parts = self._text.render(ctx)
        return Rendered(subject=content.subject, html=html, text=text, shown=shown, html_parts=parts,
                        text_parts=text_parts)


@lru_cache(maxsize=4)
def default_renderer(template_dir: str | None = None) -> Renderer:
    """The per-process renderer (compiling MJML once, however many digests are rendered)."""
    return Renderer(template_dir)

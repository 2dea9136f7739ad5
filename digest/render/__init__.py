"""Email rendering: MJML -> HTML -> inlined CSS -> Jinja, compiled once per process.

`Renderer()` compiles `digest.mjml` (the shipped one, or an admin's: digest.render.templates) once
(MJML with the `mjml` package, CSS inlined by premailer) into a Jinja template;
`Renderer.render(content)` then fills it per subscriber with Jinja alone. Jinja tags are swapped for
inert placeholders while MJML and premailer run, so neither of them can mangle or escape them. Each
paper's entry and the page around the entries are rendered once and filled per subscriber
(digest.render.render_once), so a template is checked against that contract when it is compiled,
and against the rules every template keeps (digest.render.checks): at compile time what the source
alone shows, in `Renderer.check` what a realistic digest shows.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import jinja2
from markupsafe import escape
from mjml import mjml_to_html
from premailer import Premailer

from digest.render import checks, templates
from digest.render.checks import TemplateError
from digest.render.content import Badge, DigestContent, Entry, Rendered
from digest.render.render_once import CONTENT_FIELDS, Layout, check_template, remembered_wordwrap, utf8_size

__all__ = ["GMAIL_CLIP_BYTES", "HTML_BUDGET_BYTES", "TEMPLATE_DIR", "Badge", "DigestContent", "Entry",
           "Rendered",
           "Renderer", "TemplateError", "compile_mjml", "default_renderer", "renderer_for"]

TEMPLATE_DIR = templates.shipped()
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
        """`template_dir`: an admin's folder; each template it lacks is the shipped one. Raises
        TemplateError (one line: the file, the line, the rule) for a template that breaks a rule."""
        folders = templates.Folders(Path(str(template_dir)) if template_dir else None, TEMPLATE_DIR)
        self.files = {name: folders.path(name) for name in templates.DIGEST}
        self.html_budget = html_budget
        mjml_path, text_path = self.files["digest.mjml"], self.files["digest.txt"]
        mjml_source = mjml_path.read_text(encoding="utf-8")
        text_source = text_path.read_text(encoding="utf-8")
        html_env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
        text_env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined,
                                      keep_trailing_newline=True)
        text_env.filters["wordwrap"] = remembered_wordwrap(text_env)
        self.sources = {"digest.mjml": mjml_source, "digest.txt": text_source}
        self.trees = {}
        for name, env, source, path in (("digest.mjml", html_env, mjml_source, mjml_path),
                                        ("digest.txt", text_env, text_source, text_path)):
            tree = self.trees[name] = checks.parse(env, source, path)
            # the render-once contract, before anything runs
            check_template(env, source, str(path))
            checks.check_names(tree, (*CONTENT_FIELDS, *env.globals), path)
            checks.check_loop(tree, source, path)
        try:
            self.html_source = compile_mjml(mjml_source)
        except Exception as err:  # the mjml package raises what its parser meets (KeyError, ...)
            raise checks.mjml_error(err, mjml_source, mjml_path) from None
        self._html = Layout(html_env, self.html_source, lambda v: str(escape(v)))
        self._text = Layout(text_env, text_source, str)

    def check(self, base_url: str, max_items: int, trending_items: int, excerpt_chars: int) -> None:
        """The rules a realistic digest shows (digest.render.checks): the unsubscribe and preferences
        links in both parts, in every form (with and without a feed link), and every paper of a
        realistic digest shown under the HTML budget. Raises TemplateError."""
        picks = min(max_items, checks.REALISTIC_PICKS)
        full = checks.realistic_content(base_url, picks, trending_items, excerpt_chars)
        forms = [self.render(full), self.render(replace(full, feed_url=""))]
        for name, what in (("unsubscribe_url", "the unsubscribe link (the URL of List-Unsubscribe)"),
                           ("prefs_url", "the preferences link")):
            for part, html in (("digest.mjml", True), ("digest.txt", False)):
                checks.require_link(self.sources[part], self.trees[part], self.files[part], name,
                                    [f.html if html else f.text for f in forms], getattr(full, name), what,
                                    html)
        if forms[0].shown < picks:
            ctx = {name: getattr(full, name) for name in CONTENT_FIELDS}
            size = utf8_size(self._html.render(ctx)[1])  # all of them
            line = checks.loop_line(self.trees["digest.mjml"])
            raise TemplateError(
                f"{checks.where(self.files['digest.mjml'], line)}: a realistic digest of {picks} papers is "
                f"{size:,} bytes of HTML, over the {self.html_budget:,}-byte budget under Gmail's "
                f"{GMAIL_CLIP_BYTES:,}-byte clipping: only {forms[0].shown} would be shown (make each "
                "paper's block or the page around them smaller)")

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
    """The per-process renderer (compiling MJML once, however many digests are rendered); `template_dir`
    is an admin's folder (`templates.folders(...).override`)."""
    return Renderer(template_dir)


def renderer_for(templates_dir: str | None) -> Renderer:
    """The per-process renderer for `[render] templates_dir` (resolved as digest.render.templates says)."""
    override = templates.folders(templates_dir).override
    return default_renderer(str(override) if override else None)

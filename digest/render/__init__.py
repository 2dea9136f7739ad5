"""Email rendering: MJML -> HTML -> inlined CSS -> Jinja, compiled once per process.

`Renderer()` compiles `templates/digest.mjml` once (MJML with the `mjml` package, CSS inlined by
premailer) into a Jinja template; `Renderer.render(content)` then fills it per subscriber with Jinja
alone. Jinja tags are swapped for inert placeholders while MJML and premailer run, so neither of
them can mangle or escape them.

The body of the picks loop (`{% for p in picks %}`) is a template of its own (`Layout`): each
paper's entry is rendered once per run, and the page around the entries once per form, both with
placeholders for what is each subscriber's own (rank, reason, feedback and footer links, subject,
intro), which every edition fills in, escaped. The bodies come back in whole-line parts, shared or
the subscriber's own (`Rendered.html_parts`, `text_parts`), so the message encoder encodes a shared
part once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cache, lru_cache
from importlib import resources
from operator import attrgetter
from pathlib import Path

import jinja2
from markupsafe import Markup, escape
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
    # both bodies in whole lines, each part with whether many messages of a run share it ("".join = html)
    html_parts: tuple[tuple[str, bool], ...] = ()
    text_parts: tuple[tuple[str, bool], ...] = ()


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


_LOOP = "{% for p in picks %}"
_LOOP_TAG = re.compile(r"{%-?\s*(for|endfor)\b.*?%}", re.S)
_REMEMBERED = 20_000  # renderings kept per template (entries: one per paper and form)


@cache
def _placeholder(name: str) -> str:
    return f"digest-own-{name.replace('_', '-')}-placeholder"  # passes autoescape unchanged


# What each subscriber has of their own, printed by the templates and never tested or computed with
# (a template may show these fields, nothing else): rendered once with placeholders, filled per edition.
_ENTRY_OWN = ("rank", "why", "more_url", "less_url")
_PAGE_OWN = ("subject", "preheader", "intro", "date_label", "email", "archive_url", "prefs_url",
             "unsubscribe_url", "feed_url")
_PICKS = "picks_html"  # the page's place for the entries, at the start of a line
_ENTRY_FIELDS = tuple(f.name for f in fields(Entry))
_ENTRY_SHARED = tuple(f.name for f in fields(Entry) if f.name not in _ENTRY_OWN)
_entry_key, _entry_shared = attrgetter(*_ENTRY_FIELDS), attrgetter(*_ENTRY_SHARED)
_PLACEHOLDERS = {n: _placeholder(n) for n in (*_ENTRY_OWN, *_PAGE_OWN, _PICKS)}
_CONTENT_FIELDS = tuple(f.name for f in fields(DigestContent))

Runs = tuple[tuple[str, tuple[str, ...]], ...]  # whole lines, each run with the own fields it holds
Parts = tuple[tuple[str, bool], ...]  # a body in whole lines, each with whether many messages share it


def split_loop(source: str) -> tuple[str, str]:
    """(the template with the picks loop replaced by `{{ picks_html }}` at the start of a line, the
    loop's body ending with a newline): each entry then starts and ends on a line boundary."""
    start = source.index(_LOOP)
    depth, at = 1, start + len(_LOOP)
    for m in _LOOP_TAG.finditer(source, at):
        depth += 1 if m.group(1) == "for" else -1
        if depth == 0:
            body = source[at:m.start()].strip(" ")
            outer = source[:start].rstrip(" ")
            outer = (outer if outer.endswith("\n") or not outer else outer + "\n") + "{{ picks_html }}" + source[m.end():]
            return outer, body if body.endswith("\n") else body + "\n"
    raise ValueError("the picks loop of the template has no {% endfor %}")


def runs(html: str, names: Sequence[str]) -> Runs:
    """`html` cut into runs of whole lines, each with the placeholders of `names` it holds: the lines
    holding none joined, and the lines holding some joined (fewer parts to fill and encode); `_PICKS`
    always starts a run of its own."""
    out: list[tuple[str, tuple[str, ...]]] = []
    lines = html.split("\n")
    for line in [f"{x}\n" for x in lines[:-1]] + ([lines[-1]] if lines[-1] else []):
        holds = tuple(n for n in names if _placeholder(n) in line)
        if out and bool(holds) == bool(out[-1][1]) and _PICKS not in holds:
            out[-1] = (out[-1][0] + line, (*out[-1][1], *(n for n in holds if n not in out[-1][1])))
        else:
            out.append((line, holds))
    return tuple(out)


def fill(parts: list[tuple[str, bool]], rendered: Runs, value: Callable[[str], str]) -> None:
    """Append `rendered` to `parts` with the placeholders replaced by `value(name)`; a run holding
    none is shared by every message that shows it (an empty run is left out)."""
    for text, holds in rendered:
        if holds:
            for name in holds:
                text = text.replace(_PLACEHOLDERS[name], value(name))
            parts.append((text, False))
        elif text:
            parts.append((text, True))


class Layout:
    """One part's template (HTML or text), its picks loop cut out as a template of its own: each
    entry is rendered once per paper and the page around them once per form (its trending papers,
    "more" count, whether it links a feed), both with placeholders for what is each subscriber's own,
    which every edition fills in, escaped by `escape`."""

    def __init__(self, env: jinja2.Environment, source: str, escape: Callable[[object], str]):
        page, entry = split_loop(source)
        self.page, self.entry, self.escape = env.from_string(page), env.from_string(entry), escape
        self._entries: dict[tuple, Runs] = {}
        self._pages: dict[tuple, Runs] = {}

    def entry_runs(self, e: Entry) -> Runs:
        linked = e.more_url is not None
        key = (_entry_shared(e), linked)
        done = self._entries.get(key)
        if done is None:
            own = {n: _placeholder(n) if linked or not n.endswith("_url") else None for n in _ENTRY_OWN}
            done = _remember(self._entries, key, runs(self.entry.render(p=replace(e, **own)), _ENTRY_OWN))
        return done

    def page_runs(self, ctx: dict) -> Runs:
        key = (*(_frozen(v) for k, v in ctx.items() if k not in _PAGE_OWN and k != "picks"), bool(ctx["feed_url"]))
        done = self._pages.get(key)
        if done is None:
            own = {n: _placeholder(n) if n != "feed_url" or ctx[n] else "" for n in _PAGE_OWN}
            page = self.page.render({**ctx, **own, _PICKS: Markup(_placeholder(_PICKS))})
            done = _remember(self._pages, key, runs(page, (*_PAGE_OWN, _PICKS)))
        return done

    def render(self, ctx: dict) -> tuple[str, Parts]:
        """The part for `ctx` (the template's variables), whole and in its parts."""
        parts: list[tuple[str, bool]] = []
        esc = self.escape
        for text, holds in self.page_runs(ctx):
            if _PICKS in holds:  # at the start of its run
                for e in ctx["picks"]:
                    fill(parts, self.entry_runs(e), lambda n, e=e: esc(getattr(e, n)))
                text, holds = text.replace(_PLACEHOLDERS[_PICKS], ""), tuple(n for n in holds if n != _PICKS)
            fill(parts, ((text, holds),), lambda n: esc(ctx[n]))
        return "".join([p for p, _ in parts]), tuple(parts)


class Renderer:
    """Holds the compiled templates; create one per process and reuse it for every subscriber."""

    def __init__(self, template_dir: str | Path | None = None, html_budget: int = HTML_BUDGET_BYTES):
        directory = Path(str(template_dir or TEMPLATE_DIR))
        self.html_budget = html_budget
        self.html_source = compile_mjml((directory / "digest.mjml").read_text(encoding="utf-8"))
        html_env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
        text_env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        text_env.filters["wordwrap"] = _wordwrap(text_env)
        self._html = Layout(html_env, self.html_source, lambda v: str(escape(v)))
        self._text = Layout(text_env, (directory / "digest.txt").read_text(encoding="utf-8"), str)

    def render(self, content: DigestContent) -> Rendered:
        """Fill both parts; past the HTML budget show fewer papers and count the rest as 'more'."""
        ctx = {name: getattr(content, name) for name in _CONTENT_FIELDS}  # entries stay objects
        picks = ctx["picks"]
        shown = len(picks)
        html, parts = self._html.render(ctx)
        while (size := _utf8_size(parts)) > self.html_budget and shown > 1:
            shown = max(1, min(shown - 1, int(shown * self.html_budget / size)))
            ctx = {**ctx, "picks": picks[:shown], "more_count": content.more_count + len(picks) - shown}
            html, parts = self._html.render(ctx)
        text, text_parts = self._text.render(ctx)
        return Rendered(subject=content.subject, html=html, text=text, shown=shown, html_parts=parts,
                        text_parts=text_parts)


def _utf8_size(parts: Parts) -> int:
    """The UTF-8 size of the parts joined (a shared part's is remembered: encoding a whole digest to
    measure it cost more than filling it)."""
    return sum(_shared_size(p) if shared else len(p.encode()) for p, shared in parts)


_shared_size = lru_cache(maxsize=32768)(lambda part: len(part.encode()))


def _frozen(value):
    """A template value as a key: a list of entries as their fields."""
    if isinstance(value, list):
        return tuple(map(_entry_key, value))
    return value


def _remember(memo: dict, key: tuple, value: Runs) -> Runs:
    if len(memo) >= _REMEMBERED:
        memo.clear()
    memo[key] = value
    return value


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

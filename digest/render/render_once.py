"""Render-once parts: each paper's entry is rendered once per run and the page around the entries
once per form, with placeholders for what is each subscriber's own; every edition fills those in,
escaped. Speed work, behind this contract:

- Each subscriber's own fields (an entry's rank, why-line and feedback links; the page's subject,
  preheader, intro, date, address and links) may only be printed as they are: `{{ p.why }}`. A
  template that tests one (`{% if p.why %}`) or transforms one (`{{ p.why|upper }}`, `~`, a
  comparison) would see the placeholder, not the value, so it is refused when the template is
  compiled (`check_template`), in one line naming the template, the line and the field. The links
  (`p.more_url`, `p.less_url`, `feed_url`) may also be tested for presence: whether there is one is
  part of what a rendering is kept under.
- What `Layout.render` assembles is exactly what rendering the template in full gives, for every
  subscriber in any order (tests/test_render_parts.py).

The bodies come back in whole-line parts, shared or the subscriber's own (`Rendered.html_parts`,
`text_parts`), so the message encoder (digest.mail.fast_encoding) encodes a shared part once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from functools import cache, lru_cache
from operator import attrgetter

import jinja2
from jinja2 import nodes
from markupsafe import Markup

from digest.render.content import DigestContent, Entry

LOOP = _LOOP = "{% for p in picks %}"  # the papers' loop, as a template must write it (digest.render.checks)
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
CONTENT_FIELDS = tuple(f.name for f in fields(DigestContent))

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
            outer = (outer if outer.endswith("\n") or not outer else outer
                     + "\n") + "{{ picks_html }}" + source[m.end():]
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
        key = (*(_frozen(v) for k, v in ctx.items() if k not in _PAGE_OWN and k != "picks"),
               bool(ctx["feed_url"]))
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




# ---------------------------------------------------------------------------------- the contract

# may be tested: whether there is one is in the key
_PRESENCE = frozenset({"more_url", "less_url", "feed_url"})


class TemplateContractError(ValueError):
    """A template that tests or transforms a subscriber's own field, in one line."""


def check_template(env: jinja2.Environment, source: str, name: str) -> None:
    """Refuse a template that does anything with a subscriber's own field but print it as it is
    (see the module's contract): TemplateContractError naming `name`, the line and the field."""
    tree = env.parse(source)
    entries = {f.target.name for f in tree.find_all(nodes.For)
               if isinstance(f.iter, nodes.Name) and f.iter.name == "picks"
               and isinstance(f.target, nodes.Name)}

    def visit(node: nodes.Node, parent: nodes.Node | None) -> None:
        own = _own_field(node, entries)
        if own is not None and not _allowed(node, parent, own):
            raise TemplateContractError(
                f"{name} line {node.lineno}: {own} is each subscriber's own: a template may print it as it "
                "is "
                f"({{{{ {own} }}}}), not test or transform it (it is filled in after the template ran)")
        for child in node.iter_child_nodes():
            visit(child, node)

    visit(tree, None)


def _own_field(node: nodes.Node, entries: set[str]) -> str | None:
    """"p.why" for an entry's own field read from a picks loop variable, "intro" for the page's."""
    if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name) and node.node.name in entries:
        return f"{node.node.name}.{node.attr}" if node.attr in _ENTRY_OWN else None
    if isinstance(node, nodes.Getitem) and isinstance(node.node, nodes.Name) and node.node.name in entries:
        key = node.arg.value if isinstance(node.arg, nodes.Const) else None
        return f"{node.node.name}.{key}" if key in _ENTRY_OWN else None
    if isinstance(node, nodes.Name) and node.ctx == "load" and node.name in _PAGE_OWN:
        return node.name
    return None


def _allowed(node: nodes.Node, parent: nodes.Node | None, own: str) -> bool:
    if isinstance(parent, nodes.Output):
        return True  # printed as it is
    return own.rsplit(".", 1)[-1] in _PRESENCE and isinstance(parent, nodes.If
                                                              | nodes.CondExpr) and parent.test is node


def utf8_size(parts: Parts) -> int:
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




def remembered_wordwrap(env: jinja2.Environment):
    """Jinja's wordwrap, remembered: the same excerpts are wrapped for thousands of digests a run."""
    wrap = jinja2.filters.do_wordwrap

    @lru_cache(maxsize=16384)
    def wordwrap(s: str, width: int = 79) -> str:
        return wrap(env, s, width)

    return wordwrap

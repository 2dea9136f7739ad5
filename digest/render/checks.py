"""The rules every template keeps, shipped or an admin's override, checked when it is compiled (at the
start of every command that renders): each refusal is one line naming the file and the line.

- It parses (Jinja), and the digest's MJML compiles.
- It uses only what it is given (a digest template: the fields of `DigestContent`).
- The render-once contract on each subscriber's own fields (digest.render.render_once.check_template).
- Required links: a digest links its unsubscribe URL (the one its List-Unsubscribe header carries) and
  the preferences; the text part prints both; a confirmation or manage email links its `url`.
- Size: a realistic digest of `REALISTIC_PICKS` papers (or fewer when the list's digests hold fewer)
  fits the HTML budget under Gmail's clipping size, every paper shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import jinja2
from jinja2 import meta, nodes

from digest.render.content import Badge, DigestContent, Entry
from digest.render.render_once import LOOP

REALISTIC_PICKS = 10  # papers in the realistic digest the size rule renders
_WORDS = ("diffusion models learn to denoise résumé-style latent representations across scales while "
          "preserving fine structure & <detail> under distribution shift, with strong results on "
          "ImageNet and COCO — and a 3× faster sampler ").split()


class TemplateError(ValueError):
    """A template that breaks a rule, in one line naming the file and the line."""


def where(path: Path | str, line: int | None) -> str:
    return f"{path} line {line}" if line else str(path)


def parse(env: jinja2.Environment, source: str, path: Path | str) -> nodes.Template:
    """The template's syntax tree; a syntax error as a TemplateError naming the file and the line."""
    try:
        return env.parse(source)
    except jinja2.TemplateSyntaxError as err:
        raise TemplateError(f"{where(path, err.lineno)}: {err.message}") from None


def check_names(tree: nodes.Template, given: Iterable[str], path: Path | str) -> None:
    """Refuse a name the template is not given (it would fail on the first subscriber, not at start)."""
    given = set(given)
    unknown = sorted(meta.find_undeclared_variables(tree) - given)
    if unknown:
        line = next(n.lineno for n in tree.find_all(nodes.Name) if n.name == unknown[0])
        raise TemplateError(f"{where(path, line)}: {unknown[0]} is not given to this template (it has: "
                            f"{', '.join(sorted(given))})")


def printed_at(tree: nodes.Node, name: str, linked: bool | None = None) -> int | None:
    """The first line that prints `name` ({{ name }}); `linked` True/False: only as an HTML link's
    `href="..."` / only elsewhere."""
    for out in tree.find_all(nodes.Output):
        for before, node in zip([None, *out.nodes], out.nodes, strict=False):
            if isinstance(node, nodes.Name) and node.name == name:
                href = isinstance(before, nodes.TemplateData) and before.data.endswith(('href="', "href='"))
                if linked is None or href == linked:
                    return node.lineno
    return None


def branch_without(tree: nodes.Template, name: str) -> int | None:
    """The line of an `{% if %}` one of whose branches prints `name` and another does not."""
    for node in tree.find_all(nodes.If):
        branches = [node.body, *(e.body for e in node.elif_), node.else_]
        has = [printed_at(nodes.Template(branch), name) is not None for branch in branches]
        if any(has) and not all(has):
            return node.lineno
    return None


def last_line(source: str) -> int:
    return source.rstrip("\n").count("\n") + 1


def require_link(source: str, tree: nodes.Template, path: Path | str, name: str, rendered: Iterable[str],
                 value: str, what: str, html: bool) -> None:
    """Refuse a template whose realistic renderings do not all carry `value` (the URL `name` holds) as a
    link (`href="..."` in HTML, anywhere in text). The line named: where it is printed but not as a link,
    else the `{% if %}` with a branch that leaves it out, else the template's end."""
    needle = f'href="{value}"' if html else value
    if all(needle in r for r in rendered):
        return
    how = f'<a href="{{{{ {name} }}}}">' if html else f"{{{{ {name} }}}}"
    if html and (at := printed_at(tree, name, linked=False)):
        said = "is printed here but not as a link"
    elif at := branch_without(tree, name):
        said = "is left out by a branch of this {% if %}"
    else:
        at, said = last_line(source), "is missing"
    raise TemplateError(f"{where(path, at)}: {what} {said}: the template must keep {how}")


def mjml_error(err: Exception, source: str, path: Path | str) -> TemplateError:
    """MJML that does not compile, naming the line of the element it names when it names one."""
    text = str(err).strip("'\"") or type(err).__name__
    tag = re.search(r"mj-[a-z-]+", text)
    line = None
    if tag:
        at = source.find(f"<{tag.group(0)}")
        line = source[:at].count("\n") + 1 if at >= 0 else None
    return TemplateError(f"{where(path, line)}: not valid MJML: {text}")


# ------------------------------------------------------------------------------- realistic digest


def _text(n: int, seed: int) -> str:
    words = [_WORDS[(seed + i * 7) % len(_WORDS)] for i in range(n)]
    return " ".join(words).capitalize()


def realistic_content(base_url: str, picks: int, trending: int, excerpt_chars: int) -> DigestContent:
    """A digest as a real list sends it: long titles and author lists, full excerpts, badges, escaped
    and non-ASCII text, signed links as long as real ones, the trending block."""
    token = "eyJzIjo0MiwiayI6InVuc3Vic2NyaWJlIn0.ZxY3Qw.q8Vn1bS2xY4rT7uK0pLmZ3aWcE9dHfJ6gNi5oRvTe-A"

    def link(kind: str, n: int = 0) -> str:
        return f"{base_url}/{kind}/{token}{n or ''}"

    def entry(i: int, own: bool) -> Entry:
        return Entry(
            rank=i, title=_text(14, i), url=f"https://arxiv.org/abs/2410.{19000 + i:05d}",
            authors=", ".join(f"{w.capitalize()} {_WORDS[i % len(_WORDS)].capitalize()}"
                              for w in _WORDS[i:i + 5]) + " et al.",
            excerpt=_text(200, i)[:excerpt_chars],
            why=f"Matches your topic “diffusion models” ({_text(6, i + 3).lower()}); ▲ 120 upvotes"
            if own else "",
            meta="▲ 120 upvotes · 14 comments · 25 Oct 2024",
            pdf_url=f"https://arxiv.org/pdf/2410.{19000 + i:05d}",
            badges=(Badge("Code ★ 1.2k", "https://github.com/example-lab/a-long-repository-name"),
                    Badge("Project page", "https://example-lab.github.io/project/"),
                    Badge("Accepted at NeurIPS 2024")),
            more_url=link("feedback", 2 * i) if own else None,
            less_url=link("feedback", 2 * i + 1) if own else None)

    return DigestContent(
        subject="10 new papers on diffusion models: " + _text(8, 1), preheader=_text(24, 2),
        heading="Your papers on diffusion models", intro=_text(30, 3), date_label="Friday 25 October 2024",
        site_name="Trending Papers", email="a.researcher@example-university.edu", frequency_label="daily",
        archive_url=link("archive"), prefs_url=link("preferences"), unsubscribe_url=link("unsubscribe"),
        feed_url=link("feed") + ".atom", picks=[entry(i, True) for i in range(1, picks + 1)],
        trending=[entry(i, False) for i in range(picks + 1, picks + 1 + trending)])


def check_loop(tree: nodes.Template, source: str, path: Path | str) -> None:
    """A digest template keeps its loop over the papers, written `{% for p in picks %}` (each paper's
    block is cut out and rendered once per paper: digest.render.render_once)."""
    if LOOP not in source:
        raise TemplateError(f"{where(path, loop_line(tree))}: the papers' loop must be written exactly "
                            f"{LOOP} ... {{% endfor %}}")


def loop_line(tree: nodes.Template) -> int | None:
    return next((f.lineno for f in tree.find_all(nodes.For)
                 if isinstance(f.iter, nodes.Name) and f.iter.name == "picks"), None)

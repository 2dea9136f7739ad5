"""The renderer fills entries and the page around them from renderings it keeps (once per paper and
form, with placeholders for what is each subscriber's own): what it assembles must be exactly what
rendering the templates in full gives, for every subscriber, in any order, and the message encoded
from its parts must be byte for byte the message encoded whole."""

import re
from dataclasses import replace
from datetime import UTC, datetime

import jinja2
import pytest
from markupsafe import Markup

from digest.mail.message import Envelope, message_bytes
from digest.records import Paper, Pick
from digest.render import TEMPLATE_DIR, Renderer
from digest.render.compose import compose
from digest.render.render_once import remembered_wordwrap, split_loop

WHEN = datetime(2026, 11, 22, 8, tzinfo=UTC)
PAPERS = {i: Paper(id=i, title=f"Paper {i} on <diffusion> & “video”",
                   abstract="We study things & stuff. " * 30,
                   authors=["Ada Lovelace", "Émile Borel"], upvotes=3 * i, arxiv_id=f"2410.{i:05d}",
                   pdf_url=f"https://arxiv.org/pdf/2410.{i:05d}",
                   code_url="https://github.com/x/y" if i % 2 else None)
          for i in range(1, 9)}


def content(who: str, picks: list[tuple[int, str]], *, trending=(7, 8), feedback=True, feed=True,
            topics=("video",)):
    return compose(site_name="Trending <Papers>", email=f"{who}@example.org", frequency="daily",
                   topics=list(topics),
                   picks=[Pick(paper_id=p, score=1.0, why=why) for p, why in picks],
                   trending=[Pick(paper_id=t, score=1.0) for t in trending], papers=PAPERS, when=WHEN,
                   archive_url=f"https://d.example/archive/{who}?d=1&x=<2>",
                   prefs_url=f"https://d.example/p/{who}",
                   unsubscribe_url=f"https://d.example/u/{who}",
                   feed_url=f"https://d.example/f/{who}.atom" if feed else "",
                   feedback=(lambda p, v, w=who: f"https://d.example/fb/{w}?p={p}&v={v}") if feedback
                   else None)


CASES = [
    content("ada",
            [(1, "Matches “video” & <b>more</b>"), (2, "Matches video"),
             (3, "By Émile Borel, whom you follow")]),
    # same papers, other ranks
    content("bob", [(2, "Matches “video” & <b>more</b>"), (1, "Another reason"), (3, "Matches video")]),
    content("cyd", [(1, "Matches video")], feedback=False, feed=False, trending=()),
    content("dee", [], topics=()),
    content("ada",
            [(1, "Matches “video” & <b>more</b>"), (2, "Matches video"),
             (3, "By Émile Borel, whom you follow")]),
]


def full_templates(renderer: Renderer) -> tuple[jinja2.Template, jinja2.Template]:
    """The two templates as one Jinja pass each renders them, without anything kept."""
    html_env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    text_env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined,
                                  keep_trailing_newline=True)
    text_env.filters["wordwrap"] = remembered_wordwrap(text_env)
    return (html_env.from_string(renderer.html_source),
            text_env.from_string((TEMPLATE_DIR / "digest.txt").read_text()))


def between_tags(html: str) -> str:
    return re.sub(r">\s+<", "><", html)


@pytest.fixture(scope="module")
def renderer():
    return Renderer()


def test_assembled_parts_are_the_full_rendering_for_every_subscriber_in_any_order(renderer):
    html_t, text_t = full_templates(renderer)
    for c in CASES + CASES[::-1]:
        out = renderer.render(c)
        ctx = {**vars(c)}
        assert out.text == text_t.render(ctx)
        assert between_tags(out.html) == between_tags(html_t.render(ctx))
        # and exactly the split templates rendered in full (only whitespace between tags moved)
        page, entry = split_loop(renderer.html_source)
        env = renderer._html.page.environment
        entries = Markup("".join(env.from_string(entry).render(p=e) for e in c.picks))
        assert out.html == env.from_string(page).render({**ctx, "picks_html": entries})
        assert "".join(p for p,
                       _ in out.html_parts) == out.html and "".join(p for p, _ in out.text_parts) == out.text


def test_what_is_each_subscribers_own_is_escaped_and_never_shared(renderer):
    out = renderer.render(CASES[0])
    assert "&lt;b&gt;more&lt;/b&gt;" in out.html and "<b>more</b>" not in out.html
    assert "https://d.example/archive/ada?d=1&amp;x=&lt;2&gt;" in out.html
    assert "placeholder" not in out.html + out.text
    for part, shared in out.html_parts + out.text_parts:
        if shared:
            assert "ada" not in part, part  # a shared part holds nothing of this subscriber's


def test_a_message_encoded_from_parts_is_the_message_encoded_whole(renderer):
    env = Envelope(from_address="Digest <d@example.org>", to_address="ada@example.org", to_name="Ada",
                   subject="x",
                   message_id="<digest.1.2026-11-22@example.org>", date=WHEN)
    for c in CASES:
        for intro in (c.intro + " = trailing space \r\n é", "a NUL \x00 in the middle", "\x00", "=00",
                      "long " + "w" * 200 + " é" * 60):
            out = renderer.render(replace(c, intro=intro))
            assert message_bytes(env, out.text, out.html, out.html_parts, out.text_parts) == \
                message_bytes(env, out.text, out.html)

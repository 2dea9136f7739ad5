from datetime import UTC, datetime

from digest.records import Paper, Pick
from digest.render import Renderer, default_renderer
from digest.render.compose import compose, excerpt


def make_content(n: int = 3, title: str = "Diffusion models for <script>alert(1)</script> video"):
    papers = {i: Paper(id=i, title=f"{title} {i}", abstract="We study things. " * 40,
                       authors=[f"Author {j}" for j in range(8)],
                       upvotes=10 * i, arxiv_id=f"2410.{i:05d}",
                       pdf_url=f"https://arxiv.org/pdf/2410.{i:05d}",
                       code_url="https://github.com/x/y") for i in range(1, n + 2)}
    picks = [Pick(paper_id=i, score=1.0 / i, topic="diffusion models", terms=["diffusion"],
                  why="Matches “diffusion models”: diffusion") for i in range(1, n + 1)]
    return compose(site_name="Trending Papers", email="ada@example.org", frequency="daily",
                   topics=["diffusion models"],
                   picks=picks, trending=[Pick(paper_id=n + 1, score=1.0)], papers=papers,
                   when=datetime(2026, 11, 22, 8, tzinfo=UTC), archive_url="https://d.example/archive/t",
                   prefs_url="https://d.example/preferences/t",
                   unsubscribe_url="https://d.example/unsubscribe/t",
                   feedback=lambda p, v: f"https://d.example/feedback/{p}/{v}")


def test_compiled_once_and_reused():
    assert default_renderer() is default_renderer()
    src = default_renderer().html_source
    assert "<mj-" not in src and "{% for p in picks %}" in src and "{{ p.title }}" in src
    assert 'style="' in src  # CSS inlined by premailer


def test_render_escapes_untrusted_text_and_has_both_parts():
    out = default_renderer().render(make_content())
    assert "<script>" not in out.html and "&lt;script&gt;" in out.html
    assert "Matches “diffusion models”" in out.html and "Matches “diffusion models”" in out.text
    assert "https://d.example/unsubscribe/t" in out.html and "https://d.example/unsubscribe/t" in out.text
    assert "https://arxiv.org/pdf/2410.00001" in out.html and "Also trending" in out.text
    assert out.subject.startswith("3 new papers for you: Diffusion models")
    assert "Author 0, Author 1, Author 2, Author 3, Author 4 et al." in out.text


def test_html_stays_under_budget_and_counts_the_rest():
    r = Renderer(html_budget=40_000)
    out = r.render(make_content(n=60))
    assert len(out.html.encode()) <= 40_000
    assert 1 <= out.shown < 60
    assert f"{60 - out.shown} more papers in this edition on the web" in out.html


def test_excerpt_cuts_at_sentence_or_word():
    text = "First sentence is here. Second sentence goes on and on and on."
    assert excerpt(text, 30) == "First sentence is here."
    assert excerpt("word " * 20, 22).endswith("…")
    assert excerpt("short", 100) == "short"

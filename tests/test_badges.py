"""Artefact badges under each paper: only where the source gave the data, never an empty badge or a
link to a URL that is not one, stars compact; in the HTML and the text part, under Gmail's clip size."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from digest.records import Paper, Pick
from digest.render import GMAIL_CLIP_BYTES, default_renderer
from digest.render.badges import badges, compact_count, venue
from digest.render.compose import compose


@pytest.mark.parametrize("n,shown", [(0, "0"), (7, "7"), (999, "999"), (1000, "1k"), (1234, "1.2k"),
                                     (1999, "1.9k"), (12_345, "12k"), (999_999, "999k"), (1_000_000, "1M"),
                                     (1_250_000, "1.2M"), (42_000_000, "42M")])
def test_stars_are_compact_and_never_overstated(n, shown):
    assert compact_count(n) == shown


@pytest.mark.parametrize("comment,badge", [
    ("Accepted at NeurIPS 2024", "Accepted at NeurIPS 2024"),
    ("12 pages, 5 figures. Accepted to ICLR 2025 (Oral)", "Accepted at ICLR 2025 (Oral)"),
    ("Accepted by the 32nd ACM SIGSOFT International Symposium on Software Testing and Analysis (ISSTA 2023)",
     "Accepted at ISSTA 2023"),
    ("To appear in Proc. ICALP 2024. 20 pages", "To appear in Proc. ICALP 2024"),
    ("Published as a conference paper at ICLR 2025", "Published in ICLR 2025"),
    ("Accepted by EMNLP 2024 Findings; code at https://github.com/x/y", "Accepted at EMNLP 2024 Findings"),
    ("accepted for publication in IEEE Transactions on Pattern Analysis and Machine Intelligence",
     "Accepted at IEEE Transactions on Pattern Analysis…"),
    ("Under review at ICML 2025", None), ("12 pages, 3 figures", None), ("Accepted at ()", None), ("", None),
    (None, None),
])
def test_venue_badge_only_for_an_acceptance_and_compact(comment, badge):
    assert venue(comment) == badge
    if badge:
        assert len(badge) <= len("To appear in ") + 41


def paper(i: int, **kw) -> Paper:
    return Paper(id=i, title=f"Paper {i} on diffusion models", abstract="We study diffusion. " * 20,
                 arxiv_id=f"2410.{i:05d}", **kw)


def test_badges_only_where_the_data_exists():
    full = badges(paper(1, code_url="https://github.com/org/repo", github_stars=1234,
                        project_url="https://org.github.io/repo", comment="Accepted at CVPR 2025"))
    assert [(b.text, b.url) for b in full] == [("Code ★ 1.2k", "https://github.com/org/repo"),
                                               ("Project page", "https://org.github.io/repo"),
                                               ("Accepted at CVPR 2025", None)]
    assert badges(paper(2)) == ()  # no code, no page, no comment: no badge at all
    assert badges(paper(3, github_stars=0, code_url="", project_url="   ", comment="8 pages")) == ()
    bad = badges(paper(4, code_url="javascript:alert(1)", project_url="https://", github_stars=56_000))
    assert [(b.text, b.url) for b in bad] == [("★ 56k GitHub stars", None)]  # stars known, no repo link
    assert [b.text for b in badges(paper(5, code_url="https://github.com/a/b"))] == ["Code"]


def content(papers: dict[int, Paper]):
    picks = [Pick(paper_id=i, score=1.0 / i, topic="diffusion models", why="Matches “diffusion models”")
             for i in papers]
    return compose(site_name="Trending Papers", email="ada@example.org", frequency="daily",
                   topics=["diffusion models"], picks=picks, trending=[], papers=papers,
                   when=datetime(2026, 11, 22, 8, tzinfo=UTC), archive_url="https://d.example/archive/t",
                   prefs_url="https://d.example/preferences/t",
                   unsubscribe_url="https://d.example/unsubscribe/t",
                   feedback=lambda p, v: f"https://d.example/feedback/{p}/{v}")


def blocks(html: str) -> list[str]:
    """Each paper's part of the HTML, from its title to the next one's."""
    return re.split(r'(?=<a href="https://huggingface\.co/papers/|<a href="https://arxiv\.org/abs/)',
                    html)[1:]


def test_rendered_badges_in_both_parts():
    papers = {1: paper(1, code_url="https://github.com/org/repo", github_stars=1234,
                       comment="Accepted at CVPR 2025"),
              2: paper(2),
              3: paper(3, code_url="javascript:alert(1)", project_url="https://", github_stars=0)}
    out = default_renderer().render(content(papers))
    one, two, three = blocks(out.html)
    assert 'class="badge"' in one and 'href="https://github.com/org/repo"' in one and "Code ★ 1.2k" in one
    assert "Accepted at CVPR 2025" in one
    for block in (two, three):  # nothing known: no badge line, no empty badge, no link that is not a URL
        assert 'class="badge"' not in block and ">Code<" not in block
    assert "javascript:" not in out.html and 'href="https://"' not in out.html and 'href=""' not in out.html
    assert re.search(r'<(a|span) [^>]*class="badge"[^>]*>\s*</\1>', out.html) is None
    text_one, text_two, text_three = re.split(r"\n(?=\d+\. Paper )", out.text.split("\n\n", 2)[2])[:3]
    assert "[Code ★ 1.2k] https://github.com/org/repo" in text_one and "[Accepted at CVPR 2025]" in text_one
    assert "[" not in text_two and "[" not in text_three and "javascript:" not in out.text


def test_a_full_edition_with_badges_stays_under_gmails_clip_size():
    papers = {i: paper(i, code_url=f"https://github.com/org/repo{i}", github_stars=1000 * i,
                       project_url=f"https://org.github.io/p{i}",
                       comment="Accepted to the 38th Conference on Neural Information Processing Systems "
                               "(NeurIPS 2024)")
              for i in range(1, 31)}
    out = default_renderer().render(content(papers))
    assert len(out.html.encode()) < GMAIL_CLIP_BYTES
    assert out.html.count("Accepted at NeurIPS 2024") == out.shown >= 10


def test_badges_from_what_ingest_stored(db):
    """A listing's repo, stars, page and comment go through the store's upsert and come back as badges;
    a URL ingest refused is not stored, so it can never be linked."""
    from digest.records import Listing
    from digest.sources.clean import clean_listing
    from digest.store.papers import load, upsert

    listings = [clean_listing(Listing(title="With code", arxiv_id="2410.00001", source="test",
                                      code_url="https://github.com/org/repo", github_stars=2500,
                                      comment="Accepted at ACL 2025 (main)")),
                clean_listing(Listing(title="Without", arxiv_id="2410.00002", source="test",
                                      code_url="javascript:alert(1)", comment="9 pages"))]
    with db.session() as s:
        upsert(s, listings, datetime(2026, 11, 22, tzinfo=UTC))
        stored = {p.title: p for p in load(s)}
    assert [(b.text, b.url) for b in badges(stored["With code"])] == [
        ("Code ★ 2.5k", "https://github.com/org/repo"), ("Accepted at ACL 2025 (main)", None)]
    assert stored["Without"].code_url is None and badges(stored["Without"]) == ()

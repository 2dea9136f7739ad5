"""Render the badges screenshot's digest (docs/img/digest-badges.png) from the bundled sample listings.

The bundled Hugging Face response (2024-10-25) predates the API's githubRepo/githubStars/projectPage
fields, so the first papers get illustrative ones (example.org / github.com/example URLs); the arXiv-style
comments are illustrative too. Everything else is the real listing, through the real renderer.

    python docs/badges_preview.py /tmp/digest-badges.html
    chromium --headless --hide-scrollbars --window-size=640,1100 --screenshot=docs/img/digest-badges.png \
        file:///tmp/digest-badges.html
"""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import UTC, datetime
from importlib import resources

from digest.records import Paper, Pick
from digest.render import default_renderer
from digest.render.compose import compose
from digest.sources.hf_daily import parse_payload

ILLUSTRATIVE = [  # code_url, github_stars, project_url, comment
    ("https://github.com/example/repo-1", 1234, None, "Accepted at ICLR 2025. 24 pages"),
    (None, None, None, None),
    ("https://github.com/example/repo-3", 87, "https://example.org/project-3", None),
    (None, None, None, "To appear in the Proceedings of the 38th Conference on Neural Information Processing "
                       "Systems (NeurIPS 2024)"),
]


def main(out: str) -> None:
    sample = resources.files("digest") / "data" / "hf_daily_papers_2024-10-25.json"
    listings, _ = parse_payload(sample.read_bytes())
    papers = {}
    for i, x in enumerate(listings[:4], 1):
        code, stars, page, comment = ILLUSTRATIVE[i - 1]
        papers[i] = replace(Paper(id=i, title=x.title, abstract=x.abstract, arxiv_id=x.arxiv_id,
                                  authors=x.authors,
                                  url=x.url, pdf_url=x.pdf_url, upvotes=x.upvotes or 0,
                                  num_comments=x.num_comments or 0, published_at=x.published_at),
                            code_url=code, github_stars=stars, project_url=page, comment=comment)
    picks = [Pick(paper_id=i, score=1.0, topic="language models",
                  why="Matches “language models”: language models")
             for i in papers]
    content = compose(site_name="Trending Papers", email="ada@example.org", frequency="daily",
                      topics=["language models", "data selection"], picks=picks, trending=[], papers=papers,
                      when=datetime(2024, 10, 26, 8, tzinfo=UTC),
                      archive_url="https://digest.example.org/archive",
                      prefs_url="https://digest.example.org/preferences",
                      unsubscribe_url="https://digest.example.org/u",
                      feedback=lambda p, v: f"https://digest.example.org/feedback/{p}/{v}")
    with open(out, "w", encoding="utf-8") as f:
        f.write(default_renderer().render(content).html)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "digest-badges.html")

"""Rendering N digests: the compiled template (MJML + premailer once, Jinja per subscriber) against
the naive way (MJML + premailer for every recipient).

    .venv/bin/python benchmarks/bench_render.py [--n 2000] [--naive 20]

The naive way is measured on --naive digests and extrapolated to N (it is that slow).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

import jinja2

from digest.records import Paper, Pick
from digest.render import TEMPLATE_DIR, Renderer, compile_mjml
from digest.render.compose import compose

ABSTRACT = ("We propose a method for learning representations of graphs that scales to millions of nodes "
            "while keeping the accuracy of full-batch training. ") * 3


def contents(n: int, per: int = 10):
    papers = {i: Paper(id=i, title=f"Paper {i}: scalable graph learning", abstract=ABSTRACT, upvotes=i % 50,
                       authors=["A. Author", "B. Author", "C. Author"], arxiv_id=f"2411.{i:05d}",
                       pdf_url=f"https://arxiv.org/pdf/2411.{i:05d}") for i in range(per + 3)}
    for s in range(n):
        picks = [Pick(paper_id=(s + k) % per, score=1.0, topic="graphs", why="Matches “graphs”: graph")
                 for k in range(per)]
        yield compose(site_name="Trending Papers", email=f"user{s}@example.org", frequency="daily",
                      topics=["graphs"], picks=picks, trending=[Pick(paper_id=per + 1, score=1.0)],
                      papers=papers,
                      when=datetime(2026, 11, 22, tzinfo=UTC), archive_url=f"https://x/a/{s}",
                      prefs_url=f"https://x/p/{s}", unsubscribe_url=f"https://x/u/{s}",
                      feedback=lambda p, v, s=s: f"https://x/f/{s}/{p}/{v}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--naive", type=int, default=20)
    args = ap.parse_args()

    t0 = time.perf_counter()
    renderer = Renderer()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for c in contents(args.n):
        renderer.render(c)
    compiled_s = time.perf_counter() - t0 + compile_s

    source = (Path(str(TEMPLATE_DIR)) / "digest.mjml").read_text()
    env = jinja2.Environment(autoescape=True)
    t0 = time.perf_counter()
    for c in contents(args.naive):
        html = compile_mjml(source)  # MJML + premailer for this recipient
        env.from_string(html).render(vars(c))
    naive_s = (time.perf_counter() - t0) / args.naive * args.n

    print(f"rendering {args.n} digests of 10 papers each")
    print(f"{'way':<44} {'seconds':>9} {'digests/s':>10}")
    print(f"{'compiled once, Jinja per subscriber':<44} {compiled_s:>9.2f} {args.n / compiled_s:>10.0f}")
    print(f"{'naive: MJML + premailer per subscriber (*)':<44} {naive_s:>9.2f} {args.n / naive_s:>10.0f}")
    print(f"(*) measured on {args.naive} digests, extrapolated; speed-up {naive_s / compiled_s:.0f}x")


if __name__ == "__main__":
    main()

"""A preferences page view with a big candidate window: what the page ranks now (the bounded, shared
preview pool, digest.usecases.preview_pool) against the naive way (read and rank the whole window on
every view, as the page did before).

    .venv/bin/python benchmarks/bench_pages.py [--papers 20000] [--views 5]

Papers are synthetic ones made from the shared eval set's text (benchmarks/synthetic.py), ingested
into a fresh SQLite database as one `file` source; the ranker is lexical. One subscriber, subscribed
three days ago, whose slot has passed: the view reaches "why no email today?", which ranks their
edition. Peak memory is the process's maximum resident set (ru_maxrss) after each phase (the naive
way runs last, so its figure is its own peak).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import synthetic  # noqa: E402
from digest.config import from_dict  # noqa: E402
from digest.subscriptions import subscribers  # noqa: E402
from digest.usecases import ingesting, pages, planning, preview_pool, setup  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--papers", type=int, default=20000)
    ap.add_argument("--views", type=int, default=5)
    args = ap.parse_args()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "papers.jsonl"
        when = (now - timedelta(hours=20)).isoformat()
        with listing.open("w", encoding="utf-8") as f:
            for row in synthetic.papers(args.papers, when=when):
                f.write(json.dumps(row) + "\n")
        settings = from_dict({"database": {"url": f"sqlite:///{tmp}/digest.db"},
                              "sources": {"bench": {"type": "file", "paths": [str(listing)]}},
                              "digest": {"ranker": "lexical"}, "web": {"secret_file": None}})
        db, _ = setup.open_database(settings)
        t = time.perf_counter()
        ingesting.ingest(db, settings)
        print(f"ingested {args.papers} papers in {time.perf_counter() - t:.1f} s")
        sid = subscribers.add(db, "ada@example.org", topics=["diffusion models", "language models"],
                              hour=(now - timedelta(hours=2)).hour).id
        later = now + timedelta(days=3)

        def naive_view() -> None:  # what the page did per view: the whole window, read and ranked
            run = planning.candidate_pool(db, settings, later)
            planning.select(db, settings, run, [subscribers.get(db, "ada@example.org")], later)

        def page_view() -> None:
            pages.delivery_status(db, settings, sid, now=later)

        rows = []
        for name, view in (("preview pool (cold: builds it)", page_view),
                           ("preview pool (warm)", page_view),
                           ("naive: whole window per view", naive_view)):
            runs = 1 if "cold" in name else args.views
            t = time.perf_counter()
            for _ in range(runs):
                view()
            rows.append((name, (time.perf_counter() - t) / runs, rss_mb()))
        print(f"\n{'per view':<34} {'seconds':>9} {'peak RSS MB':>12}   window {args.papers} papers, "
              f"preview {preview_pool.PREVIEW_PAPERS}")
        for name, secs, rss in rows:
            print(f"{name:<34} {secs:>9.3f} {rss:>12.0f}")
        print(f"speed-up, warm view vs naive: {rows[2][1] / rows[1][1]:.0f}x")
        db.dispose()


if __name__ == "__main__":
    main()

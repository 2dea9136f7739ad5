"""The two reference ways beside `digest ingest` in bench_daily.py's many-papers rows, each run as its
own process on the same JSON Lines file (the config in DIGEST_CONFIG names it), into a fresh database:

    .venv/bin/python benchmarks/ingest_ways.py naive     # the way before the speed work
    .venv/bin/python benchmarks/ingest_ways.py ceiling   # parse and insert only

- naive: the sources read and stored as `digest ingest` does, then each paper's terms analysed alone
  (`pack(analyse_paper(...))`, snowballstemmer's pure-Python stemmer), in this one process: the
  ingest as it was before issue 25's speed work, less its clean_text for plain lines.
- ceiling: json.loads of each line and one bare `executemany` INSERT of the same rows' columns
  (title, abstract, ids, counts) per 2,000, committed each: the floor of any Python ingest, which
  checks, cleans, dedupes and analyses nothing.
Each prints the papers it stored.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import Future
from datetime import UTC, datetime

from digest.usecases import setup


class PerPaper:
    """A `store.terms.Analysis` that analyses each paper alone, here."""

    ahead = 1

    def submit(self, docs):
        from digest.ranking.stored_terms import analyse_paper, pack

        done = Future()
        done.set_result([pack(analyse_paper(t, a)) for t, a in docs])
        return done


def naive() -> int:
    from snowballstemmer.english_stemmer import EnglishStemmer

    from digest.ranking import stored_terms, text
    from digest.sources import ingest as ingest_stage
    from digest.store import terms

    text._stemmer = EnglishStemmer()  # the pure-Python one, as before PyStemmer
    settings = setup.load_settings()
    db, _ = setup.open_database(settings)
    now = datetime.now(UTC)
    report = ingest_stage.ingest(db, settings, now=now)
    terms.ensure(db, stored_terms.ANALYSER, PerPaper(), since=now)
    return report.new


def ceiling() -> int:
    from sqlalchemy import text

    settings = setup.load_settings()
    db, _ = setup.open_database(settings)
    path = settings.sources["bench"].paths[0]
    now = datetime.now(UTC)
    insert = text("INSERT INTO papers (arxiv_id, title_key, title, abstract, authors, categories, sources, "
                  "upvotes, num_comments, first_seen_at, updated_at, listed) VALUES (:id, :key, :title, "
                  ":abstract, '[]', '[]', '[\"bench\"]', :upvotes, 0, :now, :now, true)")
    stored, rows = 0, []
    with open(path, encoding="utf-8") as f:
        for line in f:
            item = json.loads(line)
            rows.append({"id": item["id"], "key": item["title"].lower(), "title": item["title"],
                         "abstract": item["abstract"], "upvotes": item["upvotes"], "now": now.isoformat()})
            if len(rows) == 2000:
                stored += _insert(db, insert, rows)
                rows = []
    return stored + _insert(db, insert, rows)


def _insert(db, insert, rows) -> int:
    if rows:
        with db.session() as s:
            s.execute(insert, rows)
    return len(rows)


if __name__ == "__main__":
    print({"naive": naive, "ceiling": ceiling}[sys.argv[1]]())

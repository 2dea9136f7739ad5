"""The ingest's batched term analysis (`term_batch.pack_batch`) stores exactly the records the
per-paper way (`pack(analyse_paper(...))`) stores, byte for byte: on the bundled sample listings, on a
synthetic set made of real text (tests/ranking_world.py), and on texts built to hit the tokenizer's
corners; across batch boundaries, with its tables shrinking, and with stop words not breaking runs."""

from __future__ import annotations

import pytest

from digest.config import bundled_listings
from digest.ranking import stored_terms, term_batch, text
from digest.ranking.stored_terms import analyse_paper, pack
from digest.ranking.term_batch import pack_batch
from digest.sources.file import parse_path
from tests import ranking_world

CORNERS = [
    ("", ""),
    ("0", "."),
    ("A STUDY OF GNNS (GNNS) IN ALL CAPS", "WE PROPOSE GRAPH NEURAL NETWORKS (GNNs). THEY WORK."),
    ("Graph Neural Networks (GNNs) for LLMs", "Graph neural networks (GNNs) are used. Large language models "
     "(LLMs) too; we use GNNs and LLMs. (See Fig. 2) The end"),
    ("models' performance, 'quoted' words", "It's the models' \"best\" run: a/b-testing | x<y >= z & w. "
     "Then (Parenthesised) Sentence! And? Another one. 3D vision at 10x speed, v2.0 and A100s."),
    ("Self-supervised pre-training", "No sentence end here, just words and more words and words"),
    ("Normalization theory geometry", "Normalizing the theoretical geometric reasonable interpretable "
     "tables sized optimization personalized. Theorists' metrics."),
    ("Unicode: naïve café — “smart quotes” ‘and’ these", "Über-fast Ünïcödé\u00a0spaces\u2009and\ttabs. "
     "Ωmega λ-calculus (LC) 数据."),
    ("I a an the of", "A. B. C. I am a single-letter x y z 1 2 3 test."),
    ("Repeated repeated REPEATED", "Repeat repeat repeat. Repeat repeat! Repeat? repeat (repeat) [repeat]"),
]


def sample_docs() -> list[tuple[str, str]]:
    docs = []
    for path in bundled_listings():
        listings, _ = parse_path(path)
        docs += [(x.title, x.abstract) for x in listings]
    return docs


def world_docs() -> list[tuple[str, str]]:
    return [(p.title, p.abstract) for p in ranking_world.papers()]


def per_paper(docs: list[tuple[str, str]]) -> list[bytes]:
    return [pack(analyse_paper(t, a)) for t, a in docs]


def batched(docs: list[tuple[str, str]], size: int) -> list[bytes]:
    return [b for start in range(0, len(docs), size) for b in pack_batch(docs[start : start + size])]


def test_the_sets_are_worth_checking():
    docs = sample_docs() + world_docs()
    assert len(sample_docs()) >= 40 and len(docs) > 700
    with_acronyms = [d for d in docs if analyse_paper(*d).facts.found]
    assert len(with_acronyms) > 50


@pytest.mark.parametrize("size", [1, 7, 2000])
def test_batched_records_are_the_per_paper_ones(size):
    docs = sample_docs() + world_docs() + CORNERS
    assert batched(docs, size) == per_paper(docs)


def test_the_same_with_the_tables_shrinking(monkeypatch):
    """Past TABLE_LIMIT the tables keep what the last batch used (ids renumbered); the records stay."""
    monkeypatch.setattr(term_batch, "TABLE_LIMIT", 50)
    term_batch.reset()
    docs = CORNERS + sample_docs() + world_docs()[:200]
    sizes = []
    for start in range(0, len(docs), 64):
        assert pack_batch(docs[start : start + 64]) == per_paper(docs[start : start + 64])
        sizes.append(len(term_batch._tables.raws))
    assert max(sizes) < 64 * 300  # bounded by a batch's pieces, never the whole set's
    assert len(set(sizes)) > 1
    term_batch.reset()
    assert batched(docs, 64) == per_paper(docs)


def test_the_same_when_stop_words_do_not_break_runs(monkeypatch):
    docs = CORNERS + sample_docs()
    monkeypatch.setattr(text, "BREAK_AT_STOP_WORDS", False)
    assert batched(docs, 16) == per_paper(docs)
    monkeypatch.undo()
    assert batched(docs, 16) == per_paper(docs)


def test_records_read_back():
    docs = CORNERS + sample_docs()
    for (title, abstract), block in zip(docs, pack_batch(docs), strict=True):
        got, want = stored_terms.unpack(block), analyse_paper(title, abstract)
        assert got.hashes.tolist() == want.hashes.tolist()
        assert (got.title_words, got.abstract_words, got.lead_words) == (
            want.title_words, want.abstract_words, want.lead_words)
        assert got.facts.found == want.facts.found
    assert pack_batch([]) == []


def test_a_large_ingest_analyses_in_worker_processes_and_stores_the_same_records(db, monkeypatch):
    """Past the first batch the records are made in worker processes (ranking.term_workers), a few
    batches in flight at once; what is stored is still the per-paper record of each paper."""
    from datetime import timedelta

    from sqlalchemy import select

    from digest.ranking import term_workers
    from digest.records import Listing
    from digest.store import papers as paper_store
    from digest.store import terms
    from digest.store.models import Paper as PaperRow
    from digest.store.models import PaperTerms
    from digest.usecases.ingesting import store_terms

    monkeypatch.setattr(terms, "BATCH", 9)
    monkeypatch.setattr(term_workers, "WORKERS", 2)
    started = []
    real = term_workers.ProcessPoolExecutor
    monkeypatch.setattr(term_workers, "ProcessPoolExecutor",
                        lambda *a, **k: started.append(1) or real(*a, **k))  # the real pool, counted
    docs = (CORNERS + sample_docs())[:60]
    now = ranking_world.NOW
    with db.session() as s:
        paper_store.upsert(s, [Listing(title=t or "untitled", abstract=a, source="test") for t, a in docs],
                           now)
    assert store_terms(db, since=now - timedelta(days=1)) == 60
    assert started == [1]
    with db.session() as s:
        rows = s.execute(select(PaperRow.title, PaperRow.abstract, PaperTerms.terms)
                         .join(PaperTerms, PaperTerms.paper_id == PaperRow.id).order_by(PaperRow.id)).all()
    assert [r.terms for r in rows] == per_paper([(r.title, r.abstract) for r in rows])
    assert len(rows) == 60


def test_ingest_stores_the_terms_of_new_papers_and_of_papers_it_changes(db, settings_for, tmp_path):
    """New papers are analysed as the file is read; a paper an ingest changes (a newer version of its
    abstract: an older id) is analysed again after; every stored record is the current text's."""
    import json
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from digest.store.models import Paper as PaperRow
    from digest.store.models import PaperTerms
    from digest.store.terms import text_hash
    from digest.usecases.ingesting import ingest

    def stored() -> list:
        with db.session() as s:
            q = select(PaperRow.title, PaperRow.abstract, PaperTerms.terms, PaperTerms.text_hash)
            q = q.join(PaperTerms, PaperTerms.paper_id == PaperRow.id).order_by(PaperRow.id)
            return s.execute(q).all()

    docs = sample_docs()[:40]
    path = tmp_path / "papers.jsonl"
    items = [{"id": f"2412.{i:05d}v1", "title": t, "abstract": a} for i, (t, a) in enumerate(docs)]
    path.write_text("".join(json.dumps(x) + "\n" for x in items), encoding="utf-8")
    settings = settings_for(db.url, sources={"f": {"type": "file", "paths": [str(path)]}})
    t0 = datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert ingest(db, settings, now=t0).new == 40
    items[3] = {**items[3], "id": "2412.00003v2", "abstract": "A second version (SV2) says something else."}
    path.write_text("".join(json.dumps(x) + "\n" for x in items), encoding="utf-8")
    assert ingest(db, settings, now=t0 + timedelta(hours=1)).updated == 1
    rows = stored()
    assert len(rows) == 40 and rows[3].abstract.startswith("A second version")
    assert [r.terms for r in rows] == per_paper([(r.title, r.abstract) for r in rows])
    assert all(r.text_hash == text_hash(r.title, r.abstract) for r in rows)

"""Planning linear in papers (issue 25) decides as before: the same picks, explanations, near-duplicate
groups and trending lists as the ranker that analysed every paper per run and compared all pairs of
abstracts (recorded in tests/fixtures/ranking_recorded.json, see tests/ranking_world.py); the
near-duplicate search finds exactly the pairs a naive all-pairs search finds; stored terms are
written at ingest, read back in order, and go stale when a paper's text changes."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sqlalchemy import update

from digest.ranking.corpus import DUPLICATE_COSINE, build_corpus
from digest.ranking.index import LexicalIndex
from digest.ranking.near_duplicates import similar_pairs
from digest.ranking.stored_terms import analyse_paper, pack, unpack
from digest.records import Listing
from digest.store import papers as paper_store
from digest.store.models import Paper as PaperRow
from digest.usecases.ingesting import store_terms
from digest.usecases.planning import stored_terms_of
from tests import ranking_world

RECORDED = json.loads((Path(__file__).parent / "fixtures" / "ranking_recorded.json").read_text())


def same_outcome(got: dict, want: dict) -> None:
    assert got["picks"].keys() == want["picks"].keys()
    for sid, picks in want["picks"].items():
        mine = got["picks"][sid]
        assert [(p[0], p[2], p[3]) for p in mine] == [(p[0], p[2], p[3]) for p in picks], sid
        assert np.allclose([p[1] for p in mine], [p[1] for p in picks], atol=2e-5), sid
    assert sorted(got["groups"]) == sorted(want["groups"])
    assert got["trending"] == want["trending"]
    assert got["trending_week"] == want["trending_week"]


def test_the_world_is_worth_checking():
    """The recorded world exercises what must not change: duplicates, every kind of explanation."""
    kinds = {p[3].split(" ")[0].rstrip(":") for picks in RECORDED["picks"].values() for p in picks}
    assert {"Matches", "Trending", "Similar", "By"} <= kinds
    assert len(RECORDED["groups"]) > 20 and sum(len(v) for v in RECORDED["picks"].values()) > 300


def test_same_decisions_as_the_recorded_ranker():
    same_outcome(ranking_world.outcome(), RECORDED)


def test_same_decisions_from_stored_terms():
    """Built from records that went through their stored (packed) form, the index decides the same."""
    ps = ranking_world.papers()
    records = [unpack(pack(analyse_paper(p.title, p.abstract))) for p in ps]
    for k in range(0, len(records), 3):
        records[k] = None  # a paper without stored terms is analysed on the spot
    same_outcome(ranking_world.outcome(records), RECORDED)


def naive_pairs(unit: sp.csr_matrix, t: float) -> set[tuple[int, int]]:
    """Every pair compared: the reference."""
    full = (unit @ unit.T).toarray()
    a, b = np.nonzero(np.triu(full >= t, 1))
    return set(zip(a.tolist(), b.tolist(), strict=True))


def test_near_duplicate_search_finds_exactly_the_naive_pairs_in_papers():
    ps = ranking_world.papers()
    unit = build_corpus(ps, now=ranking_world.NOW).index.unit_rows(abstracts_only=True)
    for t in (DUPLICATE_COSINE, 0.7, 0.5):
        want = naive_pairs(unit, t)
        a, b = similar_pairs(unit, t)
        assert set(zip(a.tolist(), b.tolist(), strict=True)) == want, t
        assert len(a) == len(want)  # each pair once
    assert len(naive_pairs(unit, 0.5)) > len(naive_pairs(unit, DUPLICATE_COSINE)) > 50


def test_near_duplicate_search_finds_exactly_the_naive_pairs_in_random_vectors():
    rng = np.random.default_rng(5)
    base = sp.random(400, 300, density=0.03, random_state=6, format="csr")
    noisy = base[rng.integers(0, 400, 200)] + 0.15 * sp.random(200, 300, density=0.02, random_state=7)
    M = sp.vstack([base, noisy, sp.csr_matrix((3, 300))]).tocsr()  # and empty rows
    norms = np.sqrt(np.asarray(M.multiply(M).sum(axis=1)).ravel())
    unit = (sp.diags(1 / np.maximum(norms, 1e-9)) @ M).tocsr().astype(np.float32)
    for t in (0.95, 0.9, 0.6):
        a, b = similar_pairs(unit, t)
        assert set(zip(a.tolist(), b.tolist(), strict=True)) == naive_pairs(unit, t), t
    assert len(naive_pairs(unit, 0.9)) > 100


def test_acronyms_from_stored_terms_are_the_ones_learned_from_texts():
    docs = [(p.title, p.abstract) for p in ranking_world.papers()]
    fresh = LexicalIndex(docs)
    stored = LexicalIndex(docs, analysed=(unpack(pack(analyse_paper(*d))) for d in docs))
    assert fresh.acronyms.common and stored.acronyms.common == fresh.acronyms.common
    assert stored.acronyms.local == fresh.acronyms.local
    q = ["large language models", "LLMs", "VLM"]
    assert np.array_equal(stored.relevance(q)[0], fresh.relevance(q)[0])


def test_terms_are_stored_at_ingest_read_back_in_order_and_stale_after_a_change(db):
    now = ranking_world.NOW
    ps = ranking_world.papers()[:60]
    with db.session() as s:
        paper_store.upsert(s, [Listing(title=p.title, abstract=p.abstract, arxiv_id=f"2612.{i:05d}",
                                       source="test") for i, p in enumerate(ps)], now)
    assert store_terms(db, since=now - timedelta(days=1)) == 60
    assert store_terms(db, since=now - timedelta(days=1)) == 0  # current ones stay
    with db.session() as s:
        stored = paper_store.load(s)
    got = list(stored_terms_of(db, stored))
    assert all(g is not None for g in got)
    assert [g.hashes.tolist() for g in got] == [analyse_paper(p.title, p.abstract).hashes.tolist()
                                                 for p in stored]
    changed = stored[7]
    with db.session() as s:
        s.execute(update(PaperRow).where(PaperRow.id == changed.id).values(abstract="A new abstract."))
    with db.session() as s:
        again = paper_store.load(s)
    got = list(stored_terms_of(db, again))  # the stale record: analysed from the text read beside it
    assert got[7].hashes.tolist() == analyse_paper(changed.title, "A new abstract.").hashes.tolist()
    assert [g.hashes.tolist() for g in got] == [analyse_paper(p.title, p.abstract).hashes.tolist()
                                                 for p in again]
    assert store_terms(db) == 1


@pytest.mark.parametrize("seed", [1, 2])
def test_index_from_packed_terms_equals_index_from_texts(seed):
    rng = random.Random(seed)
    ps = rng.sample(ranking_world.papers(), 150)
    docs = [(p.title, p.abstract) for p in ps]
    fresh = LexicalIndex(docs)
    stored = LexicalIndex(docs, analysed=(unpack(pack(analyse_paper(*d))) for d in docs))
    assert (fresh.W != stored.W).nnz == 0 and np.array_equal(fresh.idf, stored.idf)


def test_one_batch_decides_as_each_subscriber_alone():
    """Best-of-the-week readers, topicless readers who liked papers and everyone else in one call: each
    gets what they get ranked alone (a batch once failed to broadcast the per-row heat)."""
    ps = ranking_world.papers()
    subs, windows = ranking_world.profiles(ps)
    mixed = [s for s in subs if s.whole_window or (s.liked and not s.topics)]
    assert any(s.whole_window for s in mixed) and any(s.liked and not s.topics for s in mixed)
    corpus = build_corpus(ps, now=ranking_world.NOW)
    together = ranking_world.rank_with(corpus, mixed, candidates=windows)
    for s in mixed:
        alone = ranking_world.rank_with(corpus, [s], candidates=windows)
        assert [p.paper_id for p in together[s.subscriber_id]] == [p.paper_id for p in alone[s.subscriber_id]]


def test_vocab_lookups_remembered_stay_true_as_terms_arrive():
    """Vocab.get remembers each term asked; a term asked before it existed is found once a later chunk
    brings it, and every column stays the one the arrays say."""
    from digest.ranking.assemble import Vocab
    from digest.ranking.text import term_hash

    vocab = Vocab()
    assert vocab.get("diffusion") is None and "diffusion" not in vocab
    vocab.columns(np.array([term_hash(t) for t in ("graph", "neural", "graph")], np.uint64))
    assert (vocab.get("graph"), vocab.get("neural"), vocab.get("diffusion", -1)) == (0, 1, -1)
    vocab.columns(np.array([term_hash(t) for t in ("diffusion", "neural")], np.uint64))
    assert (vocab["diffusion"], vocab["graph"], vocab["neural"]) == (2, 0, 1)
    with pytest.raises(KeyError):
        vocab["transformer"]



def test_scores_coverage_and_presence_are_the_products_with_the_transposed_documents(monkeypatch):
    """The index multiplies its documents' rows by the queries (no transposed copy of W), and presence
    only over the columns the queries use: the numbers are exactly those of `Q @ W.T` and `Q @ B.T` (B:
    W's whole pattern) as computed before, on a realistic set."""
    from digest.ranking import index as index_module
    from digest.ranking.text import terms as words

    world = ranking_world.papers()
    ix = LexicalIndex([(p.title, p.abstract) for p in world])
    topics = [" ".join(words(p.title, bigrams=False)[:3]) for p in world[:60]] + ["graph neural networks"]
    Q, _ = ix.query_matrix(topics)
    new = ix.scores(Q), ix.coverage(topics), ix.presence(topics)
    monkeypatch.setattr(index_module, "_by_rows", lambda D, Q: np.asarray((Q @ D.T).todense(), np.float32))
    # and presence over every column, with W's whole pattern (LexicalIndex.binary), as before
    monkeypatch.setattr(index_module, "_present_by_rows", lambda D, Q: index_module._by_rows(ix.binary(), Q))
    old = ix.scores(Q), ix.coverage(topics), ix.presence(topics)
    assert new[0].any() and new[1].any() and new[2].any()
    for a, b in zip(new, old, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_each_row_sorted_by_column_as_an_argsort_of_row_column_keys():
    from digest.ranking.sorting import by_row
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 40, 300)
    col = np.concatenate([rng.choice(5000, c, replace=False) for c in counts]).astype(np.int32)
    key = (np.repeat(np.arange(len(counts), dtype=np.int64), counts) << 32) | col
    order = np.argsort(key)
    got_col, got_order = by_row(col.copy(), counts, 5000)
    assert got_order.tolist() == order.tolist() and got_col.tolist() == col[order].tolist()
    assert not (np.diff(order) > 0).all()  # the rows were out of order: the check can fail


def test_unique_of_hashes_is_numpys():
    from digest.ranking.sorting import unique
    rng = np.random.default_rng(5)
    a = (rng.zipf(1.3, 20_000) % 5000).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    want = np.unique(a, return_index=True, return_inverse=True)
    got = unique(a)
    assert len(want[0]) < len(a) // 2  # values repeat: first occurrences matter
    assert all(w.ravel().tolist() == g.tolist() for w, g in zip(want, got, strict=True))
    assert [x.tolist() for x in unique(np.empty(0, np.uint64))] == [[], [], []]

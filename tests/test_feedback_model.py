"""Feedback teaches the ranker: a click on one paper moves similar papers up in the next digest and
dissimilar ones down, through the real planner (store, candidate pool, batched ranker) on SQLite and
PostgreSQL; and the per-subscriber model behind it (digest.ranking.feedback)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from digest.pipeline import plan
from digest.ranking import feedback, rank, semantic
from digest.ranking.ranker import build_corpus, rank_with
from digest.records import Paper as PaperRecord
from digest.records import Profile
from digest.store.models import Paper
from digest.subscriptions import subscribers
from digest.subscriptions.feedback import record_feedback, undo_feedback

VIDEO = [
    ("Temporal diffusion models for video generation",
     "Diffusion models generate video frames with temporal attention "
     "so that motion stays consistent across frames of a clip."),
    ("Long video synthesis with diffusion models",
     "We extend diffusion models to minute-long video clips, keeping "
     "temporal consistency of motion between frames."),
    ("Text-to-video diffusion",
     "A diffusion model turns a caption into video frames; temporal layers keep the motion "
     "of objects smooth from frame to frame."),
    ("Video diffusion models with motion priors",
     "Motion priors make diffusion models for video keep frames "
     "temporally coherent; we evaluate on video clips."),
]
MOLECULES = [
    ("Diffusion models for molecule generation",
     "We generate 3D molecules with diffusion models over atom positions "
     "and bonds, for drug discovery."),
    ("Protein structure diffusion",
     "A diffusion model over protein backbones designs new protein structures and "
     "binding sites for molecules."),
    ("Equivariant diffusion for drug design",
     "Equivariant diffusion models place the atoms of a drug molecule in "
     "a protein pocket."),
    ("Molecular conformer generation with diffusion models",
     "Diffusion models sample the conformers of a molecule "
     "from its chemical graph of atoms and bonds."),
]
TITLES = [t for t, _ in VIDEO + MOLECULES]
OTHERS = [(f"Sorting networks of depth {n}", f"Comparator networks that sort {n} numbers in few layers.")
          for n in range(8, 24)]
RANKERS = ["lexical"] + (["hybrid"] if semantic.available() else [])


def add_papers(db, now: datetime) -> dict[str, int]:
    with db.session() as s:
        rows = [Paper(title=t, title_key=t.lower(), abstract=a, arxiv_id=f"2611.{i:05d}", upvotes=5,
                      first_seen_at=now - timedelta(hours=2 + i))
                for i, (t, a) in enumerate(VIDEO + MOLECULES)]
        s.add_all(rows)
        s.flush()
        return {r.title: r.id for r in rows}


def digest_scores(db, settings, now: datetime, ids: dict[str, int]) -> dict[str, float]:
    """The titles of the subscriber's next digest with their scores, best first (a dry run of the planner)."""
    (edition,) = plan(db, settings, now=now, dry_run=True).editions
    titles = {v: k for k, v in ids.items()}
    return {titles[p.paper_id]: p.score for p in edition.picks}


def digest_order(db, settings, now: datetime, ids: dict[str, int]) -> list[str]:
    return list(digest_scores(db, settings, now, ids))


def moves(before: list[str], after: list[str], rated: str) -> dict[str, int]:
    """How many places each paper rose (> 0) or fell (< 0) among the papers other than the rated one."""
    assert rated in before and rated not in after  # a rated paper is never picked again
    old = [t for t in before if t != rated]
    assert sorted(old) == sorted(after)
    return {t: old.index(t) - after.index(t) for t in after}


@pytest.mark.parametrize("ranker", RANKERS)
def test_a_click_moves_similar_papers_up_and_dissimilar_ones_down(db, settings_for, ranker):
    settings = settings_for(db.url, digest={"ranker": ranker, "trending_items": 0})
    now = datetime.now(UTC)
    ids = add_papers(db, now)
    sid = subscribers.add(db, "ada@example.org", topics=["diffusion models"], max_items=20).id
    before = digest_order(db, settings, now, ids)
    assert sorted(before) == sorted(TITLES)  # every paper is a candidate: the whole ranking is visible

    liked = VIDEO[0][0]
    record_feedback(db, sid, ids[liked], 1)  # what the "more like this" link records
    moved = moves(before, digest_order(db, settings, now, ids), liked)
    assert sum(moved[t] for t, _ in VIDEO[1:]) > 0 > sum(moved[t] for t, _ in MOLECULES), moved  # as groups
    assert all(moved[t] >= 0 for t, _ in VIDEO[1:]) and all(moved[t] <= 0 for t, _ in MOLECULES), moved

    undo_feedback(db, sid, ids[liked])
    plain = digest_scores(db, settings, now, ids)
    assert list(plain) == before
    disliked = MOLECULES[0][0]
    record_feedback(db, sid, ids[disliked], -1)  # "less like this" on a molecule paper
    after = digest_scores(db, settings, now, ids)
    moved = moves(before, list(after), disliked)
    assert sum(moved[t] for t, _ in MOLECULES[1:]) <= 0 <= sum(moved[t] for t, _ in VIDEO), moved
    change = {t: after[t] - plain[t] for t in after}  # the other molecule papers lose the most score
    assert max(change[t] for t, _ in MOLECULES[1:]) < min(change[t] for t, _ in VIDEO), change


def papers() -> list[PaperRecord]:
    return [PaperRecord(i, t, a) for i, (t, a) in enumerate(VIDEO + MOLECULES)]


def test_liked_papers_are_fitted_against_the_rest_and_dislikes_alone_push_their_likes_down():
    corpus = build_corpus(papers())
    X = corpus.features
    cache: dict = {}
    (svm, liked_only, disliked_only, nothing) = feedback.models(
        [([0, 1], [4, 5]), ([0, 1], []), ([], [4]), ([], [])], X, cache)
    assert svm[0] == (0, 1, 4, 5) and liked_only[0] == (0, 1) and disliked_only[0] == (4,)
    assert nothing[0] == () and not nothing[1].any()
    fitted = [svm, liked_only, disliked_only, nothing]
    z, has = feedback.model_scores(fitted, X)
    assert has.tolist() == [True, True, True, False] and not z[3].any()
    # z-scored over the papers the reader did not rate
    for row, (rated, _) in zip(z[:3], fitted, strict=False):
        rest = np.delete(row, rated)
        assert abs(rest.mean()) < 1e-5 and abs(rest.std() - 1) < 1e-4
    for row in z[:3]:  # every model puts the other video papers above the other molecule papers
        assert row[[2, 3]].min() > row[[6, 7]].max()
    # a dislike is a negative among the rest: it pushes its neighbours further down than the rest alone
    assert z[0][[6, 7]].mean() < z[1][[6, 7]].mean()
    # one fit per distinct feedback; a paper rated both ways counts as liked
    assert len(cache) == 4
    feedback.models([([0, 1], [4, 5])], X, cache)
    assert len(cache) == 4
    ((rated, _),) = feedback.models([([0], [0, 4])], X, cache)
    assert rated == (0, 4)


def test_a_seeded_reader_without_a_phrase_gets_papers_like_its_seeds_and_feedback_moves_the_next_digest():
    """A profile with seed papers and no topic: its digest is the papers like its seeds, and its
    judgments of that digest ("more like this" on a video paper, "less like this" on a molecule one)
    put the papers like the liked one ahead of those like the disliked one in the next digest."""
    docs = [*VIDEO, *MOLECULES, *OTHERS]
    corpus = build_corpus([PaperRecord(i, t, a) for i, (t, a) in enumerate(docs)])
    seeds = [0, 4]  # one of each kind
    first = rank_with(corpus, [Profile(1, [], max_items=6, liked=seeds)])[1]
    assert {p.paper_id for p in first} == {1, 2, 3, 5, 6, 7}  # the papers like the seeds, none of the others
    assert all(p.why.startswith("Similar to") for p in first)
    rest = {1: [2, 3, 6, 7, *range(8, len(docs))]}  # the next digest: what digest 1 did not show...
    plain = [p.paper_id
             for p in rank_with(corpus, [Profile(1, [], max_items=4, liked=seeds)], candidates=rest)[1]]
    judged = Profile(1, [], max_items=4, liked=[*seeds, 1], disliked=[5])  # ... after judging it
    after = [p.paper_id for p in rank_with(corpus, [judged], candidates=rest)[1]]
    assert sorted(plain) == sorted(after) == [2, 3, 6, 7]
    # each video paper overtakes a molecule paper it was behind
    assert plain.index(7) < plain.index(3) and plain.index(6) < plain.index(2), plain
    assert after.index(3) < after.index(7) and after.index(2) < after.index(6), after


def test_scores_of_a_batch_do_not_depend_on_who_else_is_in_it():
    corpus = build_corpus(papers())
    profiles = [Profile(1, ["diffusion models"], liked=[0]), Profile(2, ["diffusion models"], disliked=[5]),
                Profile(3, ["diffusion models"], liked=[1, 2], disliked=[6]),
                Profile(4, ["diffusion models"])]
    together = rank_with(corpus, profiles)
    for pr in profiles:
        assert rank(corpus.papers, [pr])[pr.subscriber_id] == together[pr.subscriber_id]


def test_the_model_adds_a_query_of_the_liked_papers_heaviest_bm25_terms(monkeypatch):
    """Beside the SVM, a model holds a relevance-feedback query: the liked papers' mean BM25 row cut
    to its QUERY_TERMS heaviest terms, scored as its dot product with each paper's BM25 row; the
    model's scores follow that query more than the SVM's alone do."""
    docs = [*VIDEO, *MOLECULES, *OTHERS]
    corpus = build_corpus([PaperRecord(i, t, a) for i, (t, a) in enumerate(docs)])
    X, liked = corpus.features, [0, 1]
    mean = np.asarray(corpus.unit[liked].mean(axis=0)).ravel()
    assert np.count_nonzero(mean) > feedback.QUERY_TERMS  # so the cut matters
    q = feedback.query(X, liked)
    kept = np.flatnonzero(q)
    assert len(kept) == feedback.QUERY_TERMS and kept.max() < X.bm25  # BM25 columns only
    assert mean[kept].min() >= np.delete(mean, kept).max()  # the heaviest terms
    cut = np.where(np.isin(np.arange(len(mean)), kept), mean, 0)
    query_score = np.asarray(X.matrix @ q).ravel()
    assert np.allclose(query_score, corpus.unit @ cut, atol=1e-5)

    def model_z() -> np.ndarray:
        z, _ = feedback.model_scores(feedback.models([(liked, [])], X, {}), X)
        return np.delete(z[0], liked)

    with_query = model_z()
    monkeypatch.setattr(feedback, "QUERY_WEIGHT", 0.0)
    svm_alone = model_z()
    rest = np.delete(query_score, liked)
    assert np.corrcoef(with_query, rest)[0, 1] > np.corrcoef(svm_alone, rest)[0, 1] + 0.01

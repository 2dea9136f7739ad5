"""Behaviour of the batched ranker: relevance, exclusions, duplicates, feedback, explanations, trending."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from digest.ranking import rank, trending
from digest.ranking.text import terms
from digest.records import Paper, Profile

NOW = datetime(2024, 10, 25, 12, tzinfo=UTC)

# A small corpus with enough unrelated papers that document frequencies mean something.
TEXTS = [
    (
        "Denoising Diffusion Models for Image Synthesis",
        "We train diffusion models that generate images by iterative denoising of Gaussian noise.",
    ),
    (
        "A Survey of Optimizers for Deep Networks",
        "We compare optimizers. In passing we mention diffusion and models of many kinds, none central.",
    ),
    (
        "Graph Neural Networks for Molecule Property Prediction",
        "A graph neural network (GNN) predicts molecular properties from atoms and bonds.",
    ),
    (
        "Message Passing GNNs for Traffic Forecasting",
        "Graph neural networks forecast road traffic from sensor graphs with message passing.",
    ),
    (
        "Differential Privacy in Federated Learning",
        "Clients add calibrated noise so that federated training satisfies differential privacy.",
    ),
    (
        "Offline Reinforcement Learning with Conservative Critics",
        "We learn policies from logged data with a conservative value function for reinforcement learning.",
    ),
    (
        "Sparse Attention for Long Document Transformers",
        "Transformers with sparse attention read long documents in linear time.",
    ),
    (
        "Protein Structure Prediction with Language Models",
        "Large language models of protein sequences predict three-dimensional structure.",
    ),
    (
        "Speech Recognition with Self-Supervised Pretraining",
        "Self-supervised pretraining on unlabelled audio improves speech recognition.",
    ),
    (
        "Robust Object Detection under Distribution Shift",
        "Object detectors degrade under shift; we propose test-time adaptation for detection.",
    ),
    (
        "Video Diffusion Models",
        "We extend image diffusion models to video generation with temporal attention and denoising.",
    ),
    (
        "Contrastive Learning of Visual Representations",
        "Contrastive learning pulls augmented views together and pushes other images apart.",
    ),
]


def make_papers(**overrides: dict) -> list[Paper]:
    papers = [
        Paper(id=100 + i, title=t, abstract=a, upvotes=3, published_at=NOW - timedelta(days=1))
        for i, (t, a) in enumerate(TEXTS)
    ]
    for pid, fields in overrides.items():
        p = papers[int(pid.removeprefix("p")) - 100]
        for k, v in fields.items():
            setattr(p, k, v)
    return papers


def ids(picks) -> list[int]:
    return [p.paper_id for p in picks]


def one(papers, profile, **kw):
    return rank(papers, [profile], now=NOW, **kw)[profile.subscriber_id]


def test_exact_phrase_in_title_outranks_passing_mention():
    order = ids(one(make_papers(), Profile(1, ["diffusion models"])))
    assert order == [110, 100, 101] or order == [100, 110, 101]  # 101 only mentions both words in passing
    assert 107 not in order  # "language models" alone is not about diffusion models


def test_only_matching_papers_are_picked_for_topic_subscribers():
    picks = one(make_papers(), Profile(1, ["differential privacy"]))
    assert ids(picks) == [104]


def test_picks_are_sorted_and_capped_by_max_items():
    picks = one(make_papers(), Profile(1, ["diffusion models", "graph neural networks"], max_items=3))
    assert len(picks) == 3
    scores = [p.score for p in picks]
    assert scores == sorted(scores, reverse=True)


def test_exclusions_remove_papers():
    papers = make_papers()
    base = ids(one(papers, Profile(1, ["graph neural networks"])))
    assert 102 in base
    picks = one(papers, Profile(1, ["graph neural networks"], excludes=["molecule property"]))
    assert 102 not in ids(picks) and 103 in ids(picks)
    # a one-word exclude matches its stem (traffic) anywhere in title or abstract
    assert 103 not in ids(one(papers, Profile(1, ["graph neural networks"], excludes=["Traffic"])))


def test_duplicates_collapse():
    papers = make_papers()
    papers.append(Paper(200, "Denoising diffusion models for image synthesis!", "Other words entirely here."))
    papers.append(
        Paper(
            201,
            "Diffusion for images (v2)",
            TEXTS[0][1] + " ",
            upvotes=0,
            published_at=NOW - timedelta(days=1),
        )
    )
    got = ids(one(papers, Profile(1, ["diffusion models"], max_items=10)))
    assert len([i for i in got if i in (100, 200, 201)]) == 1
    assert 110 in got
    hot = trending(papers, 20, now=NOW)
    assert len([i for i in ids(hot) if i in (100, 200, 201)]) == 1


def test_feedback_moves_the_next_ranking():
    papers = make_papers()
    papers.append(Paper(300, "High Resolution Image Synthesis", "Image synthesis from Gaussian noise."))
    papers.append(
        Paper(301, "Temporal Attention for Video Generation", "Video generation with temporal attention.")
    )
    profile = Profile(1, ["diffusion models"])
    before = ids(one(papers, profile, candidates={1: [100, 110]}))
    assert sorted(before) == [100, 110]
    # like a paper close to the one ranked second: it moves up; dislike it instead: it stays down
    similar = {100: 300, 110: 301}[before[1]]
    profile.liked = [similar]
    assert ids(one(papers, profile, candidates={1: [100, 110]})) == before[::-1]
    liked = {p.paper_id: p.score for p in one(papers, profile)}
    profile.liked, profile.disliked = [], [similar]
    disliked = {p.paper_id: p.score for p in one(papers, profile)}
    assert ids(one(papers, profile, candidates={1: [100, 110]})) == before
    assert disliked[before[1]] < liked[before[1]]
    # liked and disliked papers are never picked again
    assert similar not in liked and similar not in disliked


def test_feedback_for_papers_not_passed_is_ignored():
    papers = make_papers()
    plain = one(papers, Profile(1, ["diffusion models"]))
    with_unknown = one(papers, Profile(1, ["diffusion models"], liked=[999], disliked=[998]))
    assert ids(plain) == ids(with_unknown)


def test_explanations_name_the_matched_topic_and_terms():
    picks = one(make_papers(), Profile(1, ["differential privacy", "GNN"]))
    by_id = {p.paper_id: p for p in picks}
    assert by_id[104].topic == "differential privacy"
    assert by_id[104].terms[0] == "differential privacy"
    assert by_id[104].why == "Matches “differential privacy”: differential privacy"
    assert by_id[103].topic == "GNN"
    assert "GNN" in by_id[103].terms  # "GNNs" in the title, shown as the paper wrote it, unpluralised
    assert by_id[103].why.startswith("Matches “GNN”: ")


def test_acronym_topic_finds_the_long_form_defined_in_the_batch():
    papers = make_papers()  # paper 102 defines "graph neural network (GNN)"
    papers.append(
        Paper(400, "Scalable Graph Neural Networks", "We train graph neural networks on huge graphs.")
    )
    by_id = {p.paper_id: p for p in one(papers, Profile(1, ["GNN"]))}
    assert 400 in by_id
    assert by_id[400].terms == ["graph neural networks"]
    assert by_id[400].why == "Matches “GNN”: graph neural networks"
    # without a definition anywhere in the batch, "GNN" is just a word
    papers = [p for p in papers if p.id != 102]
    assert 400 not in ids(one(papers, Profile(1, ["GNN"])))


def test_best_topic_is_the_one_that_matched():
    picks = one(make_papers(), Profile(1, ["object detection", "speech recognition"]))
    by_id = {p.paper_id: p for p in picks}
    assert by_id[109].topic == "object detection"
    assert by_id[108].topic == "speech recognition"


def test_no_topic_subscriber_gets_trending():
    papers = make_papers(p105={"upvotes": 64}, p107={"upvotes": 20})
    picks = one(papers, Profile(1, [], max_items=2))
    assert ids(picks) == [105, 107]
    assert picks[0].topic is None
    assert picks[0].why == "Trending: 64 upvotes"


def test_trending_decays_with_age_and_respects_exclude():
    papers = make_papers(p105={"upvotes": 64, "published_at": NOW - timedelta(days=60)}, p107={"upvotes": 20})
    hot = trending(papers, 3, now=NOW)
    assert hot[0].paper_id == 107
    assert 107 not in ids(trending(papers, 3, exclude=[107], now=NOW))


def test_hugely_upvoted_paper_in_area_ranks_high():
    quiet = ids(one(make_papers(), Profile(1, ["diffusion models"])))
    assert set(quiet[:2]) == {100, 110}
    runner_up = quiet[1]
    loud = ids(one(make_papers(**{f"p{runner_up}": {"upvotes": 5000}}), Profile(1, ["diffusion models"])))
    assert loud[0] == runner_up
    # but upvotes alone never bring an off-topic paper in
    assert 106 not in ids(one(make_papers(p106={"upvotes": 5000}), Profile(1, ["diffusion models"])))


def test_candidates_restrict_each_subscriber():
    papers = make_papers()
    profiles = [Profile(1, ["diffusion models"]), Profile(2, ["diffusion models"]), Profile(3, [])]
    out = rank(papers, profiles, candidates={1: [110], 3: [104, 105]}, now=NOW)
    assert ids(out[1]) == [110]
    assert set(ids(out[2])) == {100, 110, 101}
    assert set(ids(out[3])) == {104, 105}


def test_batch_equals_one_by_one():
    papers = make_papers(p103={"upvotes": 40})
    profiles = [
        Profile(1, ["diffusion models", "GNN"], max_items=4),
        Profile(2, ["reinforcement learning"], excludes=["offline"]),
        Profile(3, []),
        Profile(4, ["contrastive learning", "self-supervised"], liked=[100]),
    ]
    batch = rank(papers, profiles, now=NOW)
    for pr in profiles:
        assert batch[pr.subscriber_id] == one(papers, pr)


def test_empty_inputs():
    assert rank([], [Profile(1, ["x"])]) == {1: []}
    assert rank(make_papers(), []) == {}
    assert trending([], 5) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Self-supervised learning", ["self", "supervis", "learn", "self supervis", "supervis learn"]),
        ("GNNs, and models.", ["gnn", "model"]),
    ],
)
def test_analysis(text, expected):
    assert terms(text) == expected


def test_acronym_definitions_are_learned_from_text():
    from digest.ranking.expand import definitions, learn_acronyms

    text = (
        "We study graph neural networks (GNNs) and automated machine learning (AutoML) on "
        "ImageNet (ImageNet) with results in the appendix (see Fig)."
    )
    assert definitions(text) == {"gnn": "graph neural networks", "automl": "automated machine learning"}
    # an acronym whose meaning the corpus disagrees on is not used corpus-wide
    learned = learn_acronyms(
        ["domain adaptation (DA) works", "data augmentation (DA) helps", "our GNN (GNN)"]
    )
    assert "da" not in learned.common
    assert learned.for_text(0) == {"da": "domain adaptation"}


def test_explanation_names_every_topic_a_paper_matches():
    from digest.ranking import rank
    from digest.records import Paper, Profile

    papers = [
        Paper(id=1, title="Image generation with shortest path diffusion models",
              abstract="Diffusion models for image generation, with a new noise schedule."),
        Paper(id=2, title="Graph neural networks for molecules",
              abstract="Message passing on molecular graphs."),
        Paper(id=3, title="Diffusion models for audio",
              abstract="We apply diffusion models to speech synthesis."),
    ]
    picks = rank(papers, [Profile(subscriber_id=1, topics=["diffusion models", "image generation"])])[1]
    by_id = {p.paper_id: p for p in picks}
    assert "“diffusion models”" in by_id[1].why and "“image generation”" in by_id[1].why
    assert "also" not in by_id[3].why and 2 not in by_id


def test_one_topic_does_not_crowd_out_the_others():
    # three diffusion papers, hugely upvoted, outscore the one privacy paper ...
    papers = make_papers(p100={"upvotes": 900}, p110={"upvotes": 800}, p101={"upvotes": 700})
    tasks = ["weather forecasting", "molecule design", "audio restoration"]
    papers += [Paper(600 + i, f"Diffusion Models for {t.title()}", f"We apply diffusion models to {t}.",
                     upvotes=600, published_at=NOW - timedelta(days=1)) for i, t in enumerate(tasks)]
    profile = Profile(1, ["diffusion models", "differential privacy"], max_items=4)
    picks = one(papers, profile)
    assert [p.topic for p in picks].count("differential privacy") == 1  # ... but it gets its share
    assert [p.score for p in picks] == sorted((p.score for p in picks), reverse=True)
    assert len(picks) == 4
    alone = one(papers, Profile(1, ["diffusion models"], max_items=4))
    assert [p.topic for p in alone] == ["diffusion models"] * 4
    # a topic with fewer candidates than its share leaves its slots to the others
    wide = one(papers, Profile(1, ["diffusion models", "differential privacy"], max_items=7))
    assert len(wide) == 7 and 104 in ids(wide)


def batch_profiles() -> list[Profile]:
    """Subscribers of every kind, with different max_items (each has a pool of their own)."""
    return [
        Profile(1, ["diffusion models", "GNN"], max_items=2),
        Profile(2, ["reinforcement learning", "speech recognition"], excludes=["offline"], max_items=4),
        Profile(3, [], max_items=4),
        Profile(4, ["contrastive learning", "self-supervised"], liked=[100], max_items=4),
        Profile(5, ["graph neural networks"], disliked=[103], excludes=["  "], max_items=4),
        Profile(6, ["  Diffusion   models ", "video generation"], max_items=4),
        Profile(7, ["image synthesis"], liked=[110, 999], max_items=4),
        Profile(8, ["differential privacy", "transformers"], max_items=9),
    ]


def test_batches_against_one_corpus_give_the_picks_of_one_rank_call(monkeypatch):
    from digest.ranking import ranker
    from digest.ranking.ranker import build_corpus, rank_with

    papers = make_papers(p103={"upvotes": 40}, p110={"upvotes": 90})
    papers.append(Paper(201, "Diffusion for images (v2)", TEXTS[0][1] + " ", published_at=NOW))  # a duplicate
    profiles = batch_profiles()
    candidates = {3: [104, 105, 201], 6: [100, 110, 201]}
    whole = rank(papers, profiles, candidates=candidates, now=NOW)
    assert all(whole[pr.subscriber_id] for pr in profiles)  # everybody gets something to compare
    corpus = build_corpus(papers, now=NOW)
    batched: dict = {}
    for batch in (profiles[:3], profiles[3:4], profiles[4:]):
        batched.update(rank_with(corpus, batch, candidates=candidates))
    assert batched == whole
    assert rank_with(corpus, profiles, candidates=candidates) == whole  # the corpus is not used up
    # three copies of everybody, in chunks of 16 rows: the same picks whichever chunk one lands in
    many = [replace(pr, subscriber_id=pr.subscriber_id + 100 * r) for r in range(3) for pr in profiles]
    monkeypatch.setattr(ranker, "CELLS_PER_CHUNK", 1)
    got = rank_with(corpus, many,
                    candidates={s + 100 * r: c for r in range(3) for s, c in candidates.items()})
    assert all(got[pr.subscriber_id] == whole[pr.subscriber_id % 100] for pr in many)


def test_trending_in_a_corpus_equals_trending():
    from digest.ranking import build_corpus, trending_in

    papers = make_papers(p105={"upvotes": 64}, p107={"upvotes": 20}, p102={"upvotes": 20})
    papers.append(Paper(200, "Graph neural networks for molecule property prediction", "Another text.",
                        upvotes=30))
    papers.append(Paper(201, "Different title", TEXTS[3][1], upvotes=25, published_at=NOW))
    corpus = build_corpus(papers, now=NOW)  # learns acronyms (GNN); trending's own index does not
    for k, exclude in ((3, ()), (20, (105,)), (0, ())):
        assert trending_in(corpus, k, exclude=exclude) == trending(papers, k, exclude=exclude, now=NOW)
    assert len(trending_in(corpus, 20)) == len(papers) - 2  # one of each duplicate pair
    assert trending_in(build_corpus([]), 5) == []


def test_corpus_refuses_vectors_of_other_papers():
    from digest.ranking import build_corpus
    from digest.ranking.semantic import PaperVectors

    with pytest.raises(ValueError, match="2 paper vectors for 12 papers"):
        build_corpus(make_papers(), vectors=PaperVectors.from_rows([np.zeros((1, 384))] * 2))


def test_a_pick_names_the_other_topics_it_matches_for_each_subscriber_of_a_batch():
    """"; also “…”" lists the subscriber's other topics that match the paper, and no one else's: the
    lookup is made for a whole batch of subscribers with different numbers of topics."""
    profiles = [Profile(1, ["diffusion models", "video generation", "federated learning"]),
                Profile(2, ["video generation"]),
                Profile(3, ["temporal attention", "speech recognition", "denoising", "image synthesis"])]
    out = rank(make_papers(), profiles, now=NOW)
    why = {(sid, p.paper_id): p.why for sid, picks in out.items() for p in picks}
    assert why[1, 110].endswith("; also “video generation”") and "federated" not in why[1, 110]
    assert "also" not in why[2, 110]
    assert why[3, 110] == "Matches “temporal attention”: temporal attention; also “denoising”"
    assert why[3, 100] == "Matches “denoising”: denoising; also “image synthesis”"
    assert "also" not in why[3, 108]


@pytest.mark.parametrize("hybrid", [False, True])
def test_relevance_in_blocks_of_topics_equals_all_at_once(monkeypatch, hybrid):
    """corpus_relevance bounds its working set by computing a block of topics at a time: every row is
    the same as with all topics at once (lexical and hybrid)."""
    from digest.ranking import ranker
    from digest.ranking.ranker import build_corpus, corpus_relevance
    from digest.ranking.semantic import PaperVectors

    papers = make_papers()
    vectors = PaperVectors.of([(p.title, p.abstract) for p in papers]) if hybrid else None
    corpus = build_corpus(papers, now=NOW, vectors=vectors)
    topics = [t for _, text in TEXTS for t in text.split(".")[0].split(" ")[:3]] + ["diffusion models", "GNN"]
    whole = corpus_relevance(corpus, topics)
    assert (whole > 0).any() and whole.shape == (len(topics), corpus.n)
    monkeypatch.setattr(ranker, "CELLS_PER_CHUNK", corpus.n * 3)  # three topics a block
    out = np.full((len(topics) + 1, corpus.n), 7, np.float32)
    corpus_relevance(corpus, topics, out=out[:-1])
    assert np.array_equal(out[:-1], whole) and (out[-1] == 7).all()


def test_explanations_are_the_same_when_few_documents_keep_their_token_places(monkeypatch):
    """The index keeps the token places of only its STARTS_KEPT most recently explained documents:
    picks and their explanations are the same with room for one as with room for all."""
    from digest.ranking import index as index_module
    from digest.ranking.ranker import build_corpus, rank_with

    papers = make_papers()
    profiles = batch_profiles()
    whole = rank_with(build_corpus(papers, now=NOW), profiles)
    assert any(p.terms for picks in whole.values() for p in picks)
    monkeypatch.setattr(index_module, "STARTS_KEPT", 1)
    small = build_corpus(papers, now=NOW)
    assert rank_with(small, profiles) == whole
    assert len(small.index._token_starts) <= 2

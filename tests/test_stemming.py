"""The stemming slips of issue 14: a word that only looks like the reader's ("reasonable" for
"reasoning") is neither matched nor shown as a match, and a word of the same family ("theoretical"
for "theory") is."""

from __future__ import annotations

from datetime import timedelta

import pytest

from digest.ranking import rank
from digest.ranking.text import stem
from digest.records import Paper, Profile
from tests.test_ranking import NOW, TEXTS, ids

EXTRA = [
    ("Chain-of-Thought Reasoning in Language Models",
     "Language models solve arithmetic by step-by-step reasoning."),
    ("Reasonable Defaults for Learning Rate Schedules",
     "We find reasonable learning rate schedules for training."),
    ("A Theoretical Analysis of Overparameterized Networks", "We prove generalization bounds theoretically."),
    ("Batch Normalization Revisited", "Normalizing activations speeds up training of deep networks."),
    ("Normal Priors for Bayesian Networks", "A normal distribution is placed on every weight."),
    ("Stable Training of Generative Networks", "Our method improves the stability of adversarial training."),
]


def papers() -> list[Paper]:
    return [Paper(id=100 + i, title=t, abstract=a, upvotes=3, published_at=NOW - timedelta(days=1))
            for i, (t, a) in enumerate(TEXTS + EXTRA)]


def pick(topic: str) -> dict[int, list[str]]:
    """Each picked paper's matched words for one subscriber with that topic."""
    return {p.paper_id: p.terms for p in rank(papers(), [Profile(1, [topic])], now=NOW)[1]}


def test_a_word_that_only_looks_like_the_readers_is_not_claimed_as_a_match():
    got = pick("reasoning")
    assert got[112] == ["reasoning"]
    assert got.get(113, []) == []  # "reasonable" shares the stem but is never shown as "reasoning"
    assert pick("reasonable defaults")[113] == ["Reasonable Defaults".lower()]
    normalization = pick("normalization")
    # "normal" is another word
    assert list(normalization) == [115] and normalization[115] == ["normalization"]
    assert 116 in pick("normal distribution")


def test_a_word_of_the_same_family_matches_and_says_so():
    got = pick("learning theory")
    assert 114 in got and "theoretical" in got[114]  # "theoretical" is the family of "theory"
    picks = rank(papers(), [Profile(1, ["training stability"])], now=NOW)[1]
    assert ids(picks) == [117] and picks[0].terms == ["stability", "training"]


@pytest.mark.parametrize(("a", "b"), [
    ("normalization", "normal"), ("optimization", "optimal"), ("personalized", "person"),
    ("generalization", "general"), ("randomized", "random"),
])
def test_different_words_keep_different_stems(a, b):
    assert stem(a) != stem(b)


@pytest.mark.parametrize("family", [
    ["theory", "theories", "theoretical", "theoretically"], ["geometry", "geometric", "geometrical"],
    ["normalize", "normalizing", "normalized", "normalization"], ["optimize", "optimizer", "optimization"],
])
def test_a_family_keeps_one_stem(family):
    assert len({stem(w) for w in family}) == 1, {w: stem(w) for w in family}

"""A small, fixed ranking world for tests/test_ranking_scale.py: 700 papers made of the real text in
tests/fixtures/hf_daily_papers_2024-10-25.json (word-trigram walks over its 29 abstracts, so acronym
definitions, phrases and explanations are those of real papers; every 25th paper a near-copy of an
earlier one, some with the same title), and 80 subscribers with topics, excludes, feedback, followed
authors, best-of-the-week and candidate windows.

`outcome()` is what the ranker decides for them: picks with scores and explanations, the near-duplicate
groups, and both trending lists. tests/fixtures/ranking_recorded.json holds what the ranker before the
issue-25 speed work (all-pairs duplicate search, per-run text analysis) decided, recorded with

    .venv/bin/python tests/ranking_world.py > tests/fixtures/ranking_recorded.json

The picks of the readers with feedback were recorded again after issue 24 changed the feedback
model on purpose (the planner's SVM, then its query of the liked papers' heaviest BM25 terms); every
other reader's picks, the groups and the trending lists are still those of the ranker before the
speed work.
"""

from __future__ import annotations

import json
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from digest.ranking import trending
from digest.ranking.corpus import Window, build_corpus, trending_in
from digest.ranking.ranker import rank_with
from digest.records import Paper, Profile

HERE = Path(__file__).resolve().parent
NOW = datetime(2026, 12, 1, 8, tzinfo=UTC)


def papers() -> list[Paper]:
    items = json.loads((HERE / "fixtures" / "hf_daily_papers_2024-10-25.json").read_text(encoding="utf-8"))
    texts = [(i["paper"]["title"], i["paper"]["summary"]) for i in items]
    names = [a["name"] for i in items for a in i["paper"]["authors"]]
    follows: dict[tuple[str, str], list[str]] = {}
    for _, abstract in texts:
        words = ["", "", *abstract.split()]
        for a, b, c in zip(words, words[1:], words[2:], strict=False):
            follows.setdefault((a, b), []).append(c)
    starts = [w for w in follows if w[0] == ""]
    rng = random.Random(25)
    out: list[Paper] = []
    for i in range(700):
        if i % 25 == 24:
            src = out[rng.randrange(len(out))]
            words = src.abstract.split()
            abstract = " ".join(words[: len(words) - rng.randint(0, 6)])
            title = src.title if rng.random() < 0.3 else " ".join(reversed(src.title.split()))
        else:
            state, words = rng.choice(starts), []
            while len(words) < rng.randint(40, 160):
                nxt = follows.get(state)
                if not nxt:
                    state = rng.choice(starts)
                    words.append(state[1])
                    continue
                w = rng.choice(nxt)
                words.append(w)
                state = (state[1], w)
            abstract = " ".join(words)
            a, b = rng.choice(texts)[0].split(), rng.choice(texts)[0].split()
            title = " ".join(a[: len(a) // 2] + b[len(b) // 2 :])
        seen = NOW - timedelta(hours=rng.randint(0, 24 * 9))
        out.append(Paper(id=1000 + i, title=title, abstract=abstract, upvotes=int(rng.paretovariate(1.3)) - 1,
                         authors=rng.sample(names, 3), published_at=seen, first_seen_at=seen))
    return out


TOPICS = ["large language models", "diffusion models", "LLMs", "video generation", "reinforcement learning",
          "multimodal", "benchmark", "image editing", "3D", "reasoning", "agents", "retrieval",
          "vision language models", "VLM", "instruction tuning", "speech", "robot", "mixture of experts",
          "text-to-image", "preference optimization", "tokenizer", "evaluation", "quantization"]


def profiles(ps: list[Paper]) -> tuple[list[Profile], dict[int, Window | list[int]]]:
    rng = random.Random(26)
    out, windows = [], {}
    for s in range(80):
        pr = Profile(subscriber_id=s, topics=rng.sample(TOPICS, rng.randint(0, 4)),
                     max_items=rng.choice([3, 5, 10]), whole_window=s % 9 == 0)
        if s % 5 == 1:
            pr.excludes = [rng.choice(TOPICS)]
        if s % 6 == 2:
            pr.liked = [p.id for p in rng.sample(ps, 2)]
            pr.disliked = [rng.choice(ps).id]
        if s % 7 == 3:
            pr.authors = [rng.choice(rng.choice(ps).authors).split()[-1]]
        if s % 4 == 0:
            windows[s] = Window(NOW - timedelta(days=rng.randint(1, 7)),
                                frozenset(p.id for p in rng.sample(ps, 20)))
        elif s % 4 == 1:
            windows[s] = [p.id for p in rng.sample(ps, 300)]
        out.append(pr)
    return out, windows


def outcome(analysed: list | None = None) -> dict:
    """What the ranker decides in this world; `analysed`: the papers' stored terms to build from."""
    ps = papers()
    subs, windows = profiles(ps)
    corpus = build_corpus(ps, now=NOW, analysed=analysed)
    # best of the week ranked in a call of its own, as recorded (a mixed call decides the same:
    # test_one_batch_decides_as_each_subscriber_alone)
    picks = rank_with(corpus, [s for s in subs if not s.whole_window], candidates=windows)
    picks.update(rank_with(corpus, [s for s in subs if s.whole_window and (s.topics or not s.liked)],
                           candidates=windows))
    return {
        "picks": {str(k): [[p.paper_id, round(p.score, 5), p.topic, p.why] for p in v]
                  for k, v in sorted(picks.items())},
        "groups": [g.tolist() for g in corpus.dup_groups],
        "trending": [p.paper_id for p in trending(ps, 40, now=NOW)],
        "trending_week": [p.paper_id for p in trending_in(corpus, 40, whole_window=True)],
    }


if __name__ == "__main__":
    json.dump(outcome(), sys.stdout, indent=0)
    sys.stdout.write("\n")

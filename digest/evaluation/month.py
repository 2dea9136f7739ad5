"""A month of digests (`digest eval --rounds N`; protocol: /work/shared/eval/FEEDBACK.md, "A month of
digests"): simulated readers judge every paper they are shown, digest after digest.

Digest r is the top SHOWN of a ranking over the papers not shown in digests 1..r-1; the reader says
"more like this" to each shown paper labelled with their topic and (except the likes-only reader)
"less like this" to the others; judgments accumulate. Three readers per topic: `phrase` (the topic
phrase, likes and dislikes), `phrase-likes` (likes only) and `seeded` (no phrase: the topic's first
SEEDS relevant papers in file order are their library, never candidates). Each digest is scored by
nDCG@10 against the relevant papers not shown yet; after the last, recall = relevant shown / relevant.

The project's own methods rank through the planner's `rank_with` (the product's ranking, feedback
and all); the reference methods (reference.py) score the papers on the same base and the same
simulation picks their top SHOWN.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digest.evaluation import reference
from digest.evaluation.data import Dataset, EvalError, load_set, ndcg_at
from digest.ranking.corpus import Corpus, build_corpus
from digest.ranking.ranker import rank_with
from digest.records import Paper, Profile

ROUNDS = 6  # digests in a month (weekly)
SHOWN = 10  # papers per digest
SEEDS = 5  # a seeded reader's library: the topic's first relevant papers in file order
READERS = {
    "phrase": "topic phrase, likes + dislikes",
    "phrase-likes": "topic phrase, likes only",
    "seeded": f"{SEEDS} seed papers, no phrase, likes + dislikes",
}
METHODS = {  # the project's: what the planner does with what it is told
    "none": "judgments ignored (a seeded reader keeps their seeds)",
    "default": "the planner's ranking with the reader's judgments (the shipped feedback model)",
}


@dataclass
class Reader:
    """One simulated subscriber over a month: what they were shown and how they judged it."""

    kind: str  # a key of READERS
    topic: str
    relevant: np.ndarray  # bool per paper
    seeds: list[int] = field(default_factory=list)  # rows: the library of a seeded reader
    shown: list[int] = field(default_factory=list)  # rows, in the order shown
    liked: list[int] = field(default_factory=list)
    disliked: list[int] = field(default_factory=list)

    @property
    def phrase(self) -> bool:
        return self.kind != "seeded"

    def remaining(self, n: int) -> np.ndarray:
        """Which papers may still be shown: not shown yet, not in the library."""
        left = np.ones(n, bool)
        left[self.shown + self.seeds] = False
        return left

    def judge(self, digest: Sequence[int]) -> None:
        for d in digest:
            self.shown.append(d)
            if self.relevant[d]:
                self.liked.append(d)
            elif self.kind != "phrase-likes":
                self.disliked.append(d)


# a method ranks every reader's next digest: readers -> their digests (paper rows, best first)
Method = Callable[[list[Reader]], list[list[int]]]


def readers_for(data: Dataset, topics: Sequence[str], kind: str) -> list[Reader]:
    """One fresh reader of `kind` per topic (a seeded reader needs more than SEEDS relevant papers)."""
    out = []
    for topic in topics:
        rel = data.relevant(topic)
        if kind == "seeded":
            if rel.sum() <= SEEDS:
                continue
            out.append(Reader(kind, topic, rel, seeds=[int(i) for i in np.flatnonzero(rel)[:SEEDS]]))
        elif rel.any():
            out.append(Reader(kind, topic, rel))
    return out


def simulate(readers: list[Reader], method: Method, rounds: int) -> tuple[np.ndarray, np.ndarray]:
    """Run the month: (readers x rounds) nDCG@10 of each digest, and each reader's recall at the end."""
    n = len(readers[0].relevant) if readers else 0
    ndcg = np.zeros((len(readers), rounds))
    for r in range(rounds):
        digests = method(readers)
        for i, (reader, digest) in enumerate(zip(readers, digests, strict=True)):
            left = reader.remaining(n)
            ndcg[i, r] = ndcg_at(reader.relevant[digest], int(reader.relevant[left].sum()))
            reader.judge(digest)
    recall = np.array([
        reader.relevant[reader.shown].sum() / max(1, reader.relevant.sum() - len(reader.seeds))
        for reader in readers])
    return ndcg, recall


def planner(corpus: Corpus, feedback: bool) -> Method:
    """The project's ranking: each reader a profile (their phrase, or their library as liked papers;
    with `feedback`, their judgments too), the papers they may still be shown as candidates."""
    def method(readers: list[Reader]) -> list[list[int]]:
        profiles = [
            Profile(i, [r.topic] if r.phrase else [], max_items=SHOWN,
                    liked=r.seeds + (r.liked if feedback else []), disliked=r.disliked if feedback else [])
            for i, r in enumerate(readers)]
        candidates = {i: np.flatnonzero(r.remaining(corpus.n)).tolist() for i, r in enumerate(readers)}
        picks = rank_with(corpus, profiles, candidates=candidates)
        return [[corpus.pos[p.paper_id] for p in picks[i]] for i in range(len(readers))]
    return method


def top(scores: Callable[[Reader], np.ndarray]) -> Method:
    """A method from a scorer of one reader: the best SHOWN of the papers they may still be shown
    (ties in file order)."""
    def method(readers: list[Reader]) -> list[list[int]]:
        out = []
        for r in readers:
            s = scores(r)
            left = np.flatnonzero(r.remaining(len(s)))
            order = np.lexsort((left, -s[left]))
            out.append(left[order[:SHOWN]].tolist())
        return out
    return method


@dataclass
class Row:
    """One reader kind under one method: per topic, nDCG@10 of each digest and the recall."""

    reader: str
    name: str
    description: str
    ndcg: np.ndarray  # topics x rounds
    recall: np.ndarray  # topics
    reference: bool = False

    @property
    def first(self) -> int:
        """The first digest the mean counts: 2 for a phrase reader (digest 1 is the static ranking)."""
        return 0 if self.reader == "seeded" or self.ndcg.shape[1] == 1 else 1

    def per_topic_mean(self) -> np.ndarray:
        return self.ndcg[:, self.first:].mean(axis=1)


@dataclass
class MonthReport:
    dataset: str
    papers: int
    rounds: int
    rows: list[Row]
    topics: int = 0  # topics asked for: one without a relevant paper has no reader

    def readers(self, kind: str) -> int:
        return next((len(r.recall) for r in self.rows if r.reader == kind), 0)


def run_month(dataset_path: Path, topics_path: Path, rounds: int = ROUNDS) -> MonthReport:
    """The month for every reader, method and reference method on one eval set; EvalError as
    `load_set`, or when no topic has a relevant paper."""
    from digest.ranking import semantic

    data, topics, _ = load_set(dataset_path, topics_path)
    if not any(data.relevant(t).any() for t in topics):
        raise EvalError("no topic has a relevant paper in the dataset")
    vectors = semantic.paper_vectors(data.docs) if semantic.available() else None
    corpus = build_corpus([Paper(i, t, a) for i, (t, a) in enumerate(data.docs)], vectors=vectors)
    return month(data, topics, corpus, rounds, str(dataset_path))


def month(data: Dataset, topics: Sequence[str], corpus: Corpus, rounds: int = ROUNDS,
          name: str = "") -> MonthReport:
    """Every reader kind under "none", the project's methods, then the reference methods."""
    refs = reference.Methods(data, corpus, topics)
    rows = []
    for kind in READERS:
        methods: list[tuple[str, str, Method, bool]] = [
            ("none", METHODS["none"], planner(corpus, False), False),
            ("default", METHODS["default"], planner(corpus, True), False),
        ]
        methods += [(ref, text, top(scorer), True) for ref, (text, scorer) in refs.for_reader(kind).items()]
        for label, text, method, is_ref in methods:
            readers = readers_for(data, topics, kind)
            if not readers:
                continue
            ndcg, recall = simulate(readers, method, rounds)
            rows.append(Row(kind, label, text, ndcg, recall, is_ref))
    return MonthReport(name, len(data.ids), rounds, rows, len(topics))


def paired_se(a: np.ndarray, b: np.ndarray) -> float:
    """Standard error of the mean of the paired differences a - b (0 with fewer than two pairs)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    return float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0


def _none_of(report: MonthReport, row: Row) -> Row:
    return next(r for r in report.rows if r.reader == row.reader and r.name == "none")


def month_json(report: MonthReport) -> str:
    """{"rows": [{"reader", "name", "ndcg@10": [d1, ..., dN], "recall"}]}: the readers' means."""
    rows = [{"reader": r.reader, "name": r.name,
             "ndcg@10": [round(float(x), 4) for x in r.ndcg.mean(axis=0)],
             "recall": round(float(r.recall.mean()), 4)} for r in report.rows]
    return json.dumps({"rows": rows}, indent=2)


def _without_readers(report: MonthReport) -> str:
    """The header's note on topics that have no reader of some kind ("" when every topic has both)."""
    none = report.topics - report.readers("phrase")
    few = report.readers("phrase") - report.readers("seeded")
    parts = ([f"{none} with no relevant paper"] if none > 0 else []) + (
        [f"{few} with {SEEDS} or fewer, too few for a seeded reader"] if few > 0 else [])
    return f" ({report.topics} topics: {'; '.join(parts)})" if parts else ""


def month_text(report: MonthReport) -> str:
    """Per reader kind a table: nDCG@10 per digest, the mean (with its paired standard error against
    "none"), the recall (likewise); then what each method is."""
    n = report.rounds
    lines = [f"{report.papers} papers, {n} digest{'' if n == 1 else 's'} of {SHOWN}; readers: "
             + ", ".join(f"{report.readers(k)} {k}" for k in READERS) + _without_readers(report)]
    head = f"{'reader':<13} {'method':<18}" + "".join(f"{'d' + str(i + 1):>7}" for i in range(n))
    lines.append(head + f" {'mean':>7} {'+-se':>6} {'recall':>7} {'+-se':>6}")
    for r in report.rows:
        none = _none_of(report, r)
        means = r.ndcg.mean(axis=0)
        se = "" if r is none else f"{paired_se(r.per_topic_mean(), none.per_topic_mean()):.3f}"
        rse = "" if r is none else f"{paired_se(r.recall, none.recall):.3f}"
        lines.append(f"{r.reader:<13} {r.name:<18}" + "".join(f"{x:>7.3f}" for x in means)
                     + f" {r.per_topic_mean().mean():>7.3f} {se:>6} {r.recall.mean():>7.3f} {rse:>6}")
    lines.append(f"mean: over d2-d{n} for phrase readers (digest 1 is the static ranking), d1-d{n} for "
                 "seeded; +-se: paired standard error of the difference from none")
    for name, text in dict.fromkeys((r.name, r.description) for r in report.rows):
        lines.append(f"  {name}: {text}")
    return "\n".join(lines)

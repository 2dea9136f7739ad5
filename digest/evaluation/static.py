"""Ranking quality on a labelled paper list (`digest eval`, protocol: /work/shared/eval/SOURCES.md):
each ranker the project offers, scored on every topic at once, beside the published baselines; and
seeded profiles (`digest eval --seeded`), and the report of the one-round feedback protocol."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from digest.evaluation.data import (
    Dataset,
    EvalError,
    Result,
    average_precision_at,
    load_dataset,
    load_set,
    load_topics,
    ndcg_at,
    precision_at,
)
from digest.evaluation.feedback import (
    FEEDBACK_METHODS,
    FEEDBACK_REFERENCE,
    SHOWN,
    evaluate_feedback,
    format_feedback_table,
)
from digest.evaluation.listings import ListingsError
from digest.ranking.index import LexicalIndex, Params

# Published baselines on iclr2021_paperlist.tsv (59 topics), for the table beside our rankers.
BASELINES: dict[str, tuple[float, float, float]] = {
    "TF-IDF cosine (arxiv-sanity-lite)": (0.489, 0.468, 0.348),
    "BM25 (bm25s, Snowball)": (0.447, 0.427, 0.324),
    "all-MiniLM-L6-v2 cosine": (0.442, 0.436, 0.287),
    "BM25 + MiniLM (z-scored)": (0.478, 0.468, 0.351),
}

Scorer = Callable[[Sequence[tuple[str, str]], Sequence[str]], np.ndarray]  # docs, topics -> scores


def evaluate(dataset: Dataset, topics: Sequence[str], scorer: Scorer, name: str = "") -> Result:
    """Score every paper for every topic at once and average the three metrics over the topics."""
    topics = [t for t in topics if dataset.relevant(t).any()]
    scores = np.asarray(scorer(dataset.docs, topics), dtype=np.float64)
    per_topic: dict[str, tuple[float, float, float]] = {}
    for i, topic in enumerate(topics):
        rel = dataset.relevant(topic)
        order = np.lexsort((np.arange(len(rel)), -scores[i]))  # ties: file order, deterministic
        ranked = rel[order]
        n = int(rel.sum())
        per_topic[topic] = (ndcg_at(ranked, n), precision_at(ranked), average_precision_at(ranked, n))
    m = np.array(list(per_topic.values())).reshape(-1, 3)
    means = m.mean(axis=0) if len(m) else np.zeros(3)
    return Result(name, *(round(float(x), 4) for x in means), topics=len(topics), per_topic=per_topic)


def format_table(results: Sequence[Result], baselines: bool = True) -> str:
    """A plain-text table of our rankers beside the published baselines."""
    lines = [f"{'ranker':<46} {'nDCG@10':>8} {'P@10':>8} {'MAP@100':>8}"]
    for r in results:
        lines.append(f"{r.ranker:<46} {r.ndcg10:>8.3f} {r.p10:>8.3f} {r.map100:>8.3f}")
    if baselines:
        for name, (n, p, m) in BASELINES.items():
            lines.append(f"{'baseline: ' + name:<46} {n:>8.3f} {p:>8.3f} {m:>8.3f}")
    return "\n".join(lines)


# -- the rankers the project offers ------------------------------------------------------------


class RankerUnavailable(RuntimeError):
    """A ranker whose optional extra is not installed."""


@dataclass(frozen=True)
class RankerSpec:
    description: str
    scorer: Scorer
    extra: str | None = None  # the optional dependency group it needs
    uses_model: bool = False  # the scorer takes `encoder=` (the embedding model, `digest eval --model`)


def _lexical(docs: Sequence[tuple[str, str]], topics: Sequence[str]) -> np.ndarray:
    from digest.ranking.ranker import topic_relevance

    return topic_relevance(LexicalIndex(docs), topics)


def _default(docs: Sequence[tuple[str, str]], topics: Sequence[str], encoder: Any = None) -> np.ndarray:
    from digest.ranking import semantic

    return _hybrid(docs, topics, encoder) if semantic.available() else _lexical(docs, topics)


def _bm25(docs: Sequence[tuple[str, str]], topics: Sequence[str]) -> np.ndarray:
    plain = Params(title_weight=1.0, phrase_weight=0.0, acronyms="off")
    return LexicalIndex(docs, plain).relevance(topics)[0]


def _need_semantic() -> None:
    from digest.ranking import semantic

    if not semantic.available():
        raise RankerUnavailable(f"the semantic rankers need the semantic extra: {semantic.INSTALL_HINT}")


def _semantic(docs: Sequence[tuple[str, str]], topics: Sequence[str], encoder: Any = None) -> np.ndarray:
    from digest.ranking import semantic

    _need_semantic()
    return semantic.similarity(docs, topics, encoder or semantic.DEFAULT)


def _hybrid(docs: Sequence[tuple[str, str]], topics: Sequence[str], encoder: Any = None) -> np.ndarray:
    from digest.ranking import semantic
    from digest.ranking.ranker import topic_relevance

    _need_semantic()
    sim = semantic.sentence_similarity(docs, topics, encoder or semantic.DEFAULT)
    return topic_relevance(LexicalIndex(docs), topics, sim)


TITLE_SCALE = 0.5  # hybrid-title: the title cosine counts half as much as the sentence score (measured best)


def _hybrid_title(docs: Sequence[tuple[str, str]], topics: Sequence[str], encoder: Any = None) -> np.ndarray:
    """Lexical fused with MiniLM on the titles alone (one short text a paper: ~8x cheaper to embed)."""
    from digest.ranking import semantic
    from digest.ranking.ranker import topic_relevance

    _need_semantic()
    sim = TITLE_SCALE * semantic.title_similarity(docs, topics, encoder or semantic.DEFAULT)
    return topic_relevance(LexicalIndex(docs), topics, sim)


RANKERS: dict[str, RankerSpec] = {
    "default": RankerSpec("what rank() uses here: hybrid with the semantic extra, else lexical", _default,
                          uses_model=True),
    "lexical": RankerSpec("BM25F over stems and phrases, title weighted, acronyms learned", _lexical),
    "bm25": RankerSpec("plain BM25 over stems, no phrases, no title weight (ablation)", _bm25),
    "semantic": RankerSpec("all-MiniLM-L6-v2 cosine to the whole paper (ablation)", _semantic,
                           extra="semantic", uses_model=True),
    "hybrid": RankerSpec(
        "lexical + MiniLM cosine to the paper and to its best abstract sentence", _hybrid, extra="semantic",
        uses_model=True,
    ),
    "hybrid-title": RankerSpec(
        "lexical + MiniLM cosine to the title alone (cheaper to embed; ablation)", _hybrid_title,
        extra="semantic", uses_model=True,
    ),
}


def available_rankers() -> list[str]:
    from digest.ranking import semantic

    return [name for name, spec in RANKERS.items() if spec.extra is None or semantic.available()]


# -- the `digest eval` run -----------------------------------------------------------------------


@dataclass
class Report:
    """What `digest eval` prints: the dataset, its size, and one Result per ranker (in order); with
    `feedback`, one per feedback method, measured on digest 2 of the simulated readers."""

    dataset: str
    papers: int
    results: list[Result]
    feedback: bool = False

    @property
    def topics(self) -> int:
        """Topics with at least one relevant paper (the same for every ranker)."""
        return self.results[0].topics


def run_feedback(dataset_path: Path, topics_path: Path) -> Report:
    """The simulated-reader protocol (FEEDBACK.md) for every feedback method, "none" first."""
    data, topics, _ = load_set(dataset_path, topics_path)
    results = evaluate_feedback(data, topics, list(FEEDBACK_METHODS))
    if not results or results[0].topics == 0:
        raise EvalError("no topic has a relevant paper in the dataset")
    return Report(str(dataset_path), len(data.ids), results, feedback=True)


def run(dataset_path: Path, topics_path: Path, rankers: Sequence[str] = (), model: str | None = None,
        device: str = "cpu") -> Report:
    """Load the dataset and topics and evaluate each named ranker (default: every one installed);
    `model` replaces the bundled MiniLM in the rankers that embed (see `load_set`).

    Raises EvalError as `load_set` does, for a ranker whose extra is missing, or no topic with a
    relevant paper."""
    from digest.ranking import semantic

    data, topics, encoder = load_set(dataset_path, topics_path, model, device)
    names = list(rankers) or available_rankers()
    results = []
    for name in names:
        try:
            spec = RANKERS[name]
            scorer = partial(spec.scorer, encoder=encoder) if spec.uses_model else spec.scorer
            results.append(evaluate(data, topics, scorer, name))
        except (RankerUnavailable, semantic.ModelError) as err:
            raise EvalError(str(err)) from err
    if not results or results[0].topics == 0:
        raise EvalError("no topic has a relevant paper in the dataset")
    return Report(str(dataset_path), len(data.ids), results)


def _row(name: str, n: float, p: float, m: float) -> dict:
    return {"name": name, "ndcg@10": n, "p@10": p, "map@100": m}


def report_json(report: Report) -> str:
    """The report as one indented JSON object: dataset, papers, topics, `rows` (one per ranker, or per
    feedback method with "none" and "default" among them) and the reference rows of the protocol
    (`baselines`, or `reference` for feedback). A ranker report also keeps its older `results` list."""
    rows = [_row(r.ranker, r.ndcg10, r.p10, r.map100) for r in report.results]
    out: dict = {"dataset": report.dataset, "papers": report.papers, "topics": report.topics, "rows": rows}
    if report.feedback:
        out["protocol"] = "digest 2 of the simulated readers (shared/eval/FEEDBACK.md)"
        out["reference"] = [_row(k, *v) for k, v in FEEDBACK_REFERENCE.items()]
        return json.dumps(out, indent=2)
    out["results"] = [{"ranker": r["name"], **{k: v for k, v in r.items() if k != "name"}} for r in rows]
    out["baselines"] = [{"ranker": k, "ndcg@10": n, "p@10": p, "map@100": m}
                        for k, (n, p, m) in BASELINES.items()]
    return json.dumps(out, indent=2)


def report_text(report: Report) -> str:
    """A one-line summary, then the table of `format_table` (feedback: `format_feedback_table`)."""
    if report.feedback:
        head = (f"{report.papers} papers, {report.topics} simulated readers: digest 2 after judging the "
                f"{SHOWN} papers of digest 1 (reference: measured on ICLR 2021)")
        return head + "\n" + format_feedback_table(report.results)
    head = f"{report.papers} papers, {report.topics} topics (baselines: measured on ICLR 2021)"
    return head + "\n" + format_table(report.results)


# -- seeded profiles (`digest eval --seeded`) ---------------------------------------------------

SEEDS_PER_TOPIC = 5


@dataclass
class SeededResult:
    """nDCG@10 of the digest (the ranker's own picks, max_items 10) for each way of stating a topic,
    on the same papers: all but the topic's seeds."""

    topics: int
    seeds: int
    ndcg10: dict[str, float]  # "topic phrase" | "5 seed papers" | "both" -> mean over the topics
    per_topic: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)


def seeded(dataset: Dataset, topics: Sequence[str], n_seeds: int = SEEDS_PER_TOPIC,
           k: int = 10) -> SeededResult:
    """For each topic with more than `n_seeds` relevant papers: its first `n_seeds` relevant papers
    (in file order: deterministic) become a profile's liked papers, with no topic phrase; every other
    paper is a candidate. The digest's nDCG@k beside the topic-phrase digest and both together, all
    ranked by the real ranker (`rank_with`, lexical) over one corpus, on the same candidates."""
    from digest.ranking.ranker import Profile, build_corpus, rank_with
    from digest.records import Paper

    papers = [Paper(id=i, title=t, abstract=a) for i, (t, a) in enumerate(dataset.docs)]
    corpus = build_corpus(papers)
    kept, profiles, candidates = [], [], {}
    for topic in topics:
        rel = dataset.relevant(topic)
        if rel.sum() <= n_seeds:
            continue
        seeds = [int(i) for i in np.flatnonzero(rel)[:n_seeds]]
        rest = sorted(set(range(len(papers))) - set(seeds))
        base = len(profiles)
        profiles += [Profile(base, [topic], max_items=k), Profile(base + 1, max_items=k, liked=seeds),
                     Profile(base + 2, [topic], max_items=k, liked=seeds)]
        candidates.update({base: rest, base + 1: rest, base + 2: rest})
        kept.append((topic, rel, seeds))
    picks = rank_with(corpus, profiles, candidates=candidates)
    labels = ("topic phrase", f"{n_seeds} seed papers", "both")
    per_topic: dict[str, dict[str, float]] = {}
    for j, (topic, rel, seeds) in enumerate(kept):
        n_rel = int(rel.sum()) - len(seeds)
        per_topic[topic] = {
            label: ndcg_at(rel[[p.paper_id for p in picks[3 * j + m]]], n_rel, k)
            for m, label in enumerate(labels)}
    means = {label: round(float(np.mean([t[label] for t in per_topic.values()])), 4) if per_topic else 0.0
             for label in labels}
    return SeededResult(len(kept), n_seeds, means, per_topic)


def seeded_run(dataset_path: Path, topics_path: Path, n_seeds: int = SEEDS_PER_TOPIC) -> SeededResult:
    """`digest eval --seeded`: load the dataset and topics and run `seeded`; EvalError for unreadable
    input or no topic with more than `n_seeds` relevant papers."""
    try:
        data = load_dataset(dataset_path)
        topics = load_topics(topics_path)
    except ListingsError as err:
        raise EvalError(str(err)) from err
    result = seeded(data, topics, n_seeds)
    if result.topics == 0:
        raise EvalError(f"no topic has more than {n_seeds} relevant papers in the dataset")
    return result


def seeded_json(result: SeededResult) -> str:
    return json.dumps({"topics": result.topics, "seeds": result.seeds, "ndcg@10": result.ndcg10}, indent=2)


def seeded_text(result: SeededResult) -> str:
    lines = [f"{result.topics} topics, {result.seeds} seed papers each (the rest ranked; lexical ranker)",
             f"{'profile':<24} {'nDCG@10':>8}"]
    lines += [f"{label:<24} {v:>8.3f}" for label, v in result.ndcg10.items()]
    return "\n".join(lines)



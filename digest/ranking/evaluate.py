"""Ranking quality on a labelled paper list (protocol: /work/shared/eval/SOURCES.md).

A topic is relevant to a paper when it is one of the paper's author keywords after normalisation.
Papers are ranked by title + abstract only (the keywords are never shown to a ranker); we report
nDCG@10 (binary gain), P@10 and MAP@100 (AP over the first 100, divided by min(relevant, 100)),
averaged over the topics that have at least one relevant paper.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from digest.ranking.index import LexicalIndex, Params
from digest.ranking.listings import ListingsError, Row, read_table, read_text

# Published baselines on iclr2021_paperlist.tsv (59 topics), for the table beside our rankers.
BASELINES: dict[str, tuple[float, float, float]] = {
    "TF-IDF cosine (arxiv-sanity-lite)": (0.489, 0.468, 0.348),
    "BM25 (bm25s, Snowball)": (0.447, 0.427, 0.324),
    "all-MiniLM-L6-v2 cosine": (0.442, 0.436, 0.287),
    "BM25 + MiniLM (z-scored)": (0.478, 0.468, 0.351),
}

_NOT_KEPT = re.compile(r"[^a-z0-9 \-]")


def normalise_keyword(keyword: str) -> str:
    """Lower-case, keep a-z 0-9 space '-', fold spaces, drop a trailing plural 's' from the last word."""
    words = _NOT_KEPT.sub(" ", keyword.lower()).split()
    if words and len(words[-1]) > 3 and words[-1].endswith("s") and not words[-1].endswith("ss"):
        words[-1] = words[-1][:-1]
    return " ".join(words)


@dataclass
class Dataset:
    ids: list[str]
    docs: list[tuple[str, str]]  # (title, abstract): all a ranker may see
    keywords: list[set[str]] = field(repr=False)  # normalised labels, for judging only

    def relevant(self, topic: str) -> np.ndarray:
        return np.array([topic in kw for kw in self.keywords], dtype=bool)


def load_dataset(path: str | Path) -> Dataset:
    """The eval TSV/CSV: needs title, abstract and keywords columns (comma-separated keywords)."""
    rows: list[Row] = read_table(path, require=("title", "abstract", "keywords"))
    return Dataset(
        ids=[r.id for r in rows],
        docs=[(r.title, r.abstract) for r in rows],
        keywords=[{normalise_keyword(k) for k in r.keywords.split(",") if k.strip()} for r in rows],
    )


def load_topics(path: str | Path) -> list[str]:
    """One topic per line (anything after a tab, such as a count, is ignored); normalised, deduplicated."""
    text = read_text(path)
    topics = [normalise_keyword(line.split("\t")[0]) for line in text.splitlines()]
    return list(dict.fromkeys(t for t in topics if t))


def ndcg_at(relevant_ranked: np.ndarray, n_relevant: int, k: int = 10) -> float:
    """Binary-gain nDCG@k of a ranked list of relevance flags."""
    if n_relevant == 0:
        return 0.0
    discounts = 1 / np.log2(np.arange(2, k + 2))
    dcg = float((relevant_ranked[:k] * discounts[: len(relevant_ranked[:k])]).sum())
    return dcg / float(discounts[: min(n_relevant, k)].sum())


def precision_at(relevant_ranked: np.ndarray, k: int = 10) -> float:
    return float(relevant_ranked[:k].sum()) / k


def average_precision_at(relevant_ranked: np.ndarray, n_relevant: int, k: int = 100) -> float:
    """AP over the first k ranks, divided by min(n_relevant, k)."""
    if n_relevant == 0:
        return 0.0
    flags = relevant_ranked[:k].astype(float)
    precision = np.cumsum(flags) / np.arange(1, len(flags) + 1)
    return float((precision * flags).sum()) / min(n_relevant, k)


@dataclass
class Result:
    ranker: str
    ndcg10: float
    p10: float
    map100: float
    topics: int
    per_topic: dict[str, tuple[float, float, float]] = field(default_factory=dict, repr=False)


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
    "semantic": RankerSpec("all-MiniLM-L6-v2 cosine to the whole paper (ablation)", _semantic, extra="semantic",
                           uses_model=True),
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


class EvalError(ValueError):
    """An eval that cannot run; the message is one line for the user."""


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


def _load(dataset_path: Path, topics_path: Path, model: str | None = None,
          device: str = "cpu") -> tuple[Dataset, list[str], object]:
    """The dataset, its topics and the sentence encoder (`model`, a sentence-transformers name or
    directory as `[ranking] model`, else the bundled MiniLM), or EvalError (unreadable input, no
    topics, a model that cannot be loaded offline); with the semantic extra, the dataset's embeddings
    are kept in a temp directory for reruns (semantic.cache_dir, unless already set), per model."""
    from digest.ranking import semantic

    try:
        data = load_dataset(dataset_path)
        topics = load_topics(topics_path)
    except ListingsError as err:
        raise EvalError(str(err)) from err
    if not topics:
        raise EvalError(f"{topics_path}: no topics")
    encoder = semantic.Encoder(model, device) if model else semantic.DEFAULT
    if model:
        try:
            encoder.check()
        except semantic.ModelError as err:
            raise EvalError(f"--model: {err}") from err
    if semantic.available():  # "default" is the hybrid then
        import tempfile

        # a dataset's embeddings are computed once and kept for reruns (minutes of CPU otherwise)
        semantic.cache_dir = semantic.cache_dir or Path(tempfile.gettempdir()) / "digest-eval-embeddings"
    return data, topics, encoder


def run_feedback(dataset_path: Path, topics_path: Path) -> Report:
    """The simulated-reader protocol (FEEDBACK.md) for every feedback method, "none" first."""
    data, topics, _ = _load(dataset_path, topics_path)
    results = evaluate_feedback(data, topics, list(FEEDBACK_METHODS))
    if not results or results[0].topics == 0:
        raise EvalError("no topic has a relevant paper in the dataset")
    return Report(str(dataset_path), len(data.ids), results, feedback=True)


def run(dataset_path: Path, topics_path: Path, rankers: Sequence[str] = (), model: str | None = None,
        device: str = "cpu") -> Report:
    """Load the dataset and topics and evaluate each named ranker (default: every one installed);
    `model` replaces the bundled MiniLM in the rankers that embed (see `_load`).

    Raises EvalError as `_load` does, for a ranker whose extra is missing, or no topic with a
    relevant paper."""
    from digest.ranking import semantic

    data, topics, encoder = _load(dataset_path, topics_path, model, device)
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
    out["baselines"] = [{"ranker": k, "ndcg@10": n, "p@10": p, "map@100": m} for k, (n, p, m) in BASELINES.items()]
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


def seeded(dataset: Dataset, topics: Sequence[str], n_seeds: int = SEEDS_PER_TOPIC, k: int = 10) -> SeededResult:
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
            label: ndcg_at(rel[[p.paper_id for p in picks[3 * j + m]]], n_rel, k) for m, label in enumerate(labels)}
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


def format_feedback_table(results: Sequence[Result]) -> str:
    """Digest 2 per feedback method, then the protocol's reference rows."""
    lines = [f"{'feedback':<58} {'nDCG@10':>8} {'P@10':>8} {'MAP@100':>8}"]
    for r in results:
        label = f"{r.ranker}: {FEEDBACK_METHODS[r.ranker].description}" if r.ranker in FEEDBACK_METHODS else r.ranker
        lines.append(f"{label[:58]:<58} {r.ndcg10:>8.3f} {r.p10:>8.3f} {r.map100:>8.3f}")
    for name, (n, p, m) in FEEDBACK_REFERENCE.items():
        lines.append(f"{('reference: ' + name)[:58]:<58} {n:>8.3f} {p:>8.3f} {m:>8.3f}")
    return "\n".join(lines)


# -- does feedback teach the ranker? the simulated reader (/work/shared/eval/FEEDBACK.md) ----------

# Reference rows on iclr2021_paperlist.tsv (59 topics), z(BM25) + z(MiniLM) as the ranker (FEEDBACK.md).
FEEDBACK_REFERENCE: dict[str, tuple[float, float, float]] = {
    "none": (0.403, 0.376, 0.305),
    "Rocchio on MiniLM (+0.75 liked, -0.25 disliked)": (0.400, 0.381, 0.305),
    "arxiv-sanity-lite LinearSVC on tf-idf, alone": (0.163, 0.144, 0.058),
    "that SVM, z-scored, added to the score": (0.433, 0.412, 0.302),
    "logistic regression on MiniLM, z-scored, added": (0.391, 0.376, 0.276),
}
SHOWN = 10  # papers in digest 1


@dataclass(frozen=True)
class FeedbackMethod:
    description: str
    semantic: bool | None  # the model's features: None = no feedback, True = lexical + MiniLM (when installed)


FEEDBACK_METHODS: dict[str, FeedbackMethod] = {
    "none": FeedbackMethod("feedback ignored", None),
    "default": FeedbackMethod("the planner's: SVM per reader, BM25 + MiniLM", True),
    "lexical": FeedbackMethod("that SVM on BM25 rows only (no semantic extra)", False),
}


@dataclass
class Reader:
    """One simulated subscriber: their topic, what digest 1 showed them and how they judged it."""

    topic: str
    relevant: np.ndarray  # bool per paper
    shown: np.ndarray  # paper rows of digest 1, best first
    liked: list[int]
    disliked: list[int]


def simulated_readers(data: Dataset, topics: Sequence[str], first: np.ndarray) -> list[Reader]:
    """Digest 1 of each topic (its top SHOWN by `first`, ties in file order), judged by the labels:
    "more like this" on each shown paper that carries the topic, "less like this" on the others."""
    readers = []
    for i, topic in enumerate(topics):
        rel = data.relevant(topic)
        shown = np.lexsort((np.arange(len(rel)), -first[i]))[:SHOWN]
        readers.append(Reader(topic, rel, shown, [int(d) for d in shown if rel[d]],
                              [int(d) for d in shown if not rel[d]]))
    return readers


def second_digest(reader: Reader, score: np.ndarray) -> tuple[float, float, float]:
    """nDCG@10, P@10, MAP@100 of ranking the papers digest 1 did not show by `score`."""
    rest = np.ones(len(score), bool)
    rest[reader.shown] = False
    s, rel = score[rest], reader.relevant[rest]
    ranked = rel[np.lexsort((np.arange(len(s)), -s))]
    n = int(rel.sum())
    return ndcg_at(ranked, n), precision_at(ranked), average_precision_at(ranked, n)


def evaluate_feedback(data: Dataset, topics: Sequence[str], methods: Sequence[str]) -> list[Result]:
    """Digest 2 of every simulated reader under each feedback method, averaged over the topics.

    Digest 1 is the default ranker's relevance; digest 2 is that relevance with the reader's
    feedback fused in by the planner's own rule (feedback.apply), papers it leaves ineligible last."""
    from digest.ranking import feedback, semantic
    from digest.ranking.ranker import build_corpus, corpus_relevance
    from digest.records import Paper

    topics = [t for t in topics if data.relevant(t).any()]
    vectors = semantic.paper_vectors(data.docs) if semantic.available() else None
    corpus = build_corpus([Paper(i, t, a) for i, (t, a) in enumerate(data.docs)], vectors=vectors)
    first = corpus_relevance(corpus, topics)
    readers = simulated_readers(data, topics, first)
    rated = [(r.liked, r.disliked) for r in readers]
    rows = sorted({d for r in readers for d in r.shown.tolist()})
    col = {d: j for j, d in enumerate(rows)}
    results = []
    for name in methods:
        method = FEEDBACK_METHODS[name]
        score = first.copy()
        if method.semantic is not None:
            sim = feedback.similarity_rows(corpus.unit, vectors if method.semantic else None, rows)
            extra = feedback.apply(score, rated, sim, col, {})
            score[(first <= 0) & ~extra] = -np.inf  # what the planner may not pick goes last
        per_topic = {r.topic: second_digest(r, score[i]) for i, r in enumerate(readers)}
        means = np.array(list(per_topic.values())).reshape(-1, 3).mean(axis=0) if per_topic else np.zeros(3)
        results.append(Result(name, *(round(float(x), 4) for x in means), topics=len(readers), per_topic=per_topic))
    return results

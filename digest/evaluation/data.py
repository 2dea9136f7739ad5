"""The eval sets (protocol: /work/shared/eval/SOURCES.md): the labelled paper list, its topics, the
metrics, and loading a set with its sentence encoder for the commands.

A topic is relevant to a paper when it is one of the paper's author keywords after normalisation.
Papers are ranked by title + abstract only (the keywords are never shown to a ranker); we report
nDCG@10 (binary gain), P@10 and MAP@100 (AP over the first 100, divided by min(relevant, 100)).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digest.evaluation.listings import ListingsError, Row, read_table, read_text

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


class EvalError(ValueError):
    """An eval that cannot run; the message is one line for the user."""


def load_set(dataset_path: Path, topics_path: Path, model: str | None = None,
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



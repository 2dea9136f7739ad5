"""Speed work: a paper's analysed terms, computed once (at ingest) and stored, so a planning run
assembles its lexical index with numpy instead of tokenising and stemming every candidate again.

Contract: `analyse_paper` is the index's own analysis of one paper (text.tokens, text.terms, the lead
sentence, expand.text_facts), and `LexicalIndex` built from these records equals one built from the
texts. A record holds each term once, in the order the index meets it (title, abstract, lead), as a
64-bit hash of the term (`term_hash`), with its counts per field; the word counts of each field; and
the acronym facts of the text. `ANALYSER` names this analysis: change text.py, expand.py or this
module's rules and bump it, and every stored record is stale (store/terms.py analyses again).

`pack_batch` makes the same packed records as `pack(analyse_paper(...))` for many papers at once (the
ingest's path): each distinct word is folded, stop-checked and stemmed once (a bounded cache), each
distinct term hashed once, and the per-paper counting done for the whole batch with numpy. Its
contract, byte-identical records, is checked against the per-paper way in tests/test_stored_terms.py.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from digest.ranking import text
from digest.ranking.expand import TextFacts, text_facts
from digest.ranking.text import Segments, term_hash, terms, tokens

ANALYSER = "terms-v1"  # bump when the analysis changes: stored records of another key are analysed again
_SENTENCE_END = re.compile(r"[.!?](?=\s+[A-Z(])")
_HEAD = struct.Struct("<4sIIII")  # magic, terms, title words, abstract words, lead words
_U8, _U2 = np.dtype("<u8"), np.dtype("<u2")  # np.uint64 and np.uint16 on a little-endian machine


@dataclass
class Analysed:
    """One paper's terms: hashes (uint64, in first-occurrence order) with their title, abstract and
    lead-sentence counts (uint16), the word count of each field, and its acronym facts."""

    hashes: np.ndarray
    title: np.ndarray
    abstract: np.ndarray
    lead: np.ndarray
    title_words: int
    abstract_words: int
    lead_words: int
    facts: TextFacts = field(default_factory=TextFacts)


def first_sentence(text: str) -> str:
    m = _SENTENCE_END.search(text)
    return text[: m.start() + 1] if m else text


def words(segs: Segments) -> int:
    return sum(len(seg) for seg in segs)


def analyse_paper(title: str, abstract: str, title_segs: Segments | None = None,
                  abstract_segs: Segments | None = None, lead_segs: Segments | None = None,
                  facts: TextFacts | None = None) -> Analysed:
    """The index terms of one paper; the segments may be given (acronyms rewritten, see LexicalIndex)."""
    title_segs = tokens(title) if title_segs is None else title_segs
    abstract_segs = tokens(abstract) if abstract_segs is None else abstract_segs
    lead_segs = tokens(first_sentence(abstract)) if lead_segs is None else lead_segs
    order: dict[str, int] = {}
    counts: list[list[int]] = []
    for k, segs in enumerate((title_segs, abstract_segs, lead_segs)):
        for t in terms(segs):
            i = order.setdefault(t, len(order))
            if i == len(counts):
                counts.append([0, 0, 0])
            counts[i][k] += 1
    c = np.array(counts, dtype=np.uint16).reshape(-1, 3)
    hashes = np.fromiter((term_hash(t) for t in order), dtype=np.uint64, count=len(order))
    return Analysed(hashes, c[:, 0].copy(), c[:, 1].copy(), c[:, 2].copy(), words(title_segs),
                    words(abstract_segs), words(lead_segs),
                    text_facts(f"{title}. {abstract}") if facts is None else facts)


def pack(a: Analysed) -> bytes:
    """The stored form of a record: little-endian arrays, then (for a text that defines acronyms) its
    stems' uses and its definitions as JSON."""
    return b"".join([_HEAD.pack(b"TRM1", len(a.hashes), a.title_words, a.abstract_words, a.lead_words),
                     a.hashes.astype("<u8").tobytes(), a.title.astype("<u2").tobytes(),
                     a.abstract.astype("<u2").tobytes(), a.lead.astype("<u2").tobytes(),
                     *_packed_facts(a.facts)])


def _packed_facts(f: TextFacts) -> list[bytes]:
    if not f.found:
        return []
    return [struct.pack("<I", len(f.stems)), f.stems.astype("<u8").tobytes(), f.lower.astype("<u4").tobytes(),
            f.upper.astype("<u4").tobytes(), json.dumps(f.found, separators=(",", ":")).encode()]


def unpack(block: bytes) -> Analysed:
    magic, n, tw, aw, lw = _HEAD.unpack_from(block)
    if magic != b"TRM1":
        raise ValueError("not a stored terms record")
    at = _HEAD.size
    # views of the record's bytes, read-only (no copy: the index copies them as it concatenates)
    hashes = np.frombuffer(block, _U8, n, at)
    at += 8 * n
    title, abstract, lead = (np.frombuffer(block, _U2, n, at + 2 * n * k) for k in range(3))
    at += 6 * n
    facts = TextFacts()
    if len(block) > at:
        (m,) = struct.unpack_from("<I", block, at)
        at += 4
        stems = np.frombuffer(block, "<u8", m, at).astype(np.uint64)
        lower = np.frombuffer(block, "<u4", m, at + 8 * m).astype(np.uint32)
        upper = np.frombuffer(block, "<u4", m, at + 12 * m).astype(np.uint32)
        facts = TextFacts(json.loads(block[at + 16 * m :]), stems, lower, upper)
    return Analysed(hashes, title, abstract, lead, tw, aw, lw, facts)


def analyse_all(docs: Iterable[tuple[str, str]]) -> list[Analysed]:
    return [analyse_paper(t, a) for t, a in docs]


# --- many papers at once (speed work; the contract is in the module's docstring) -----------------------

CACHE_LIMIT = 100_000  # words (past it, that cache starts again) and term hashes (the first ones) remembered
# A word or a separator, left to right: the words of `text.tokens`, each run of them ended where
# `text._SEGMENTS` would split (its matches never start with a word character, so a word never hides one).
_SCAN = re.compile(f"[A-Za-z0-9]+|{text._SEGMENTS.pattern}")
_MISSING = object()
_stems: dict[str, str | None] = {}  # a scanned piece -> its stem; "" for a word tokens() drops, None: a break
_lower_stems: dict[str, str] = {}  # a lower-case word -> text.stem of it
_hashes: dict[str, int] = {}  # a term -> term_hash


def _stem_lower(word: str) -> str:
    got = _lower_stems.get(word)
    if got is None:
        if len(_lower_stems) >= CACHE_LIMIT:
            _lower_stems.clear()
        got = _lower_stems[word] = text.stem.__wrapped__(word)  # uncached: memory stays bounded here
    return got


def _piece(raw: str) -> str | None:
    """What `text.tokens` makes of one scanned piece: a word's stem, "" for a dropped word (a stop
    word, a single letter), None for a separator."""
    if not raw[0].isalnum():
        return None
    word, _ = text._fold(raw, False)  # the stem does not depend on the surface form kept
    if word in text.STOP_WORDS or (len(word) < 2 and not word.isdigit()):
        return ""
    return _stem_lower(word)


def _terms_of(txt: str, out: list[str]) -> int:
    """Append `text.terms(text.tokens(txt))` to `out`; returns the word count (`words`)."""
    stems, breaks = _stems, text.BREAK_AT_STOP_WORDS
    n, run = 0, []
    for raw in _SCAN.findall(txt):
        s = stems.get(raw, _MISSING)
        if s is _MISSING:
            if len(stems) >= CACHE_LIMIT:
                stems.clear()
            s = stems[raw] = _piece(raw)
        if s:
            run.append(s)
        elif s is None or breaks:
            if run:
                n += len(run)
                out += run
                out += [f"{a} {b}" for a, b in zip(run, run[1:], strict=False)]
                run = []
    if run:
        n += len(run)
        out += run
        out += [f"{a} {b}" for a, b in zip(run, run[1:], strict=False)]
    return n


def _hash(term: str) -> int:
    h = _hashes.get(term)
    if h is None:
        h = term_hash(term)
        if len(_hashes) < CACHE_LIMIT:
            _hashes[term] = h
    return h


def _hashes_of(vocab: list[str]) -> np.ndarray:
    """term_hash of each term, as uint64."""
    got = list(map(_hashes.get, vocab))
    for k, h in enumerate(got):
        if h is None:
            got[k] = _hash(vocab[k])
    return np.array(got, dtype=np.uint64)


def pack_batch(docs: Sequence[tuple[str, str]]) -> list[bytes]:
    """`pack(analyse_paper(title, abstract))` of each (title, abstract), in order."""
    if not docs:
        return []
    seq: list[str] = []  # every paper's title terms, lead terms, then the rest of its abstract's
    lens = np.zeros((len(docs), 3), dtype=np.int64)
    counts = np.zeros((len(docs), 3), dtype=np.int64)  # title, abstract, lead word counts
    for d, (title, abstract) in enumerate(docs):
        lead = first_sentence(abstract)
        at = len(seq)
        tw = _terms_of(title, seq)
        lens[d, 0], at = len(seq) - at, len(seq)
        lw = _terms_of(lead, seq)  # the abstract's first runs are its lead's (the cut is a separator)
        lens[d, 1], at = len(seq) - at, len(seq)
        rw = _terms_of(abstract[len(lead):], seq)
        lens[d, 2] = len(seq) - at
        counts[d] = tw, lw + rw, lw
    vocab = list(dict.fromkeys(seq))  # each term once (map and dict work in C: no Python call per term)
    index = {t: i for i, t in enumerate(vocab)}
    ids = np.fromiter(map(index.__getitem__, seq), dtype=np.int64, count=len(seq))
    del seq
    hashes = _hashes_of(vocab)
    v = max(len(vocab), 1)
    doc = np.repeat(np.arange(len(docs), dtype=np.int64), lens.sum(axis=1))
    part = np.repeat(np.tile(np.array([0, 1, 2], dtype=np.int64), len(docs)), lens.ravel())
    uniq, first, inverse = np.unique(doc * v + ids, return_index=True, return_inverse=True)
    # per (paper, term): [title, lead (counted in the abstract too), rest of the abstract] occurrences
    per = np.bincount(inverse.ravel() * 3 + part, minlength=3 * len(uniq)).reshape(-1, 3)
    order = np.argsort(first, kind="stable")  # each paper's terms in first-occurrence order, paper by paper
    uniq, per = uniq[order], per[order]
    ends = np.cumsum(np.bincount(uniq // v, minlength=len(docs)))
    hb = hashes[uniq % v].astype("<u8").tobytes()
    tb = per[:, 0].astype("<u2").tobytes()
    ab = (per[:, 1] + per[:, 2]).astype("<u2").tobytes()
    lb = per[:, 1].astype("<u2").tobytes()
    out = []
    start = 0
    for d, (title, abstract) in enumerate(docs):
        end = int(ends[d])
        facts = text_facts(f"{title}. {abstract}", _stem_lower, _hash)
        out.append(b"".join([_HEAD.pack(b"TRM1", end - start, *counts[d].tolist()), hb[8 * start : 8 * end],
                             tb[2 * start : 2 * end], ab[2 * start : 2 * end], lb[2 * start : 2 * end],
                             *_packed_facts(facts)]))
        start = end
    return out

"""Speed work: a paper's analysed terms, computed once (at ingest) and stored, so a planning run
assembles its lexical index with numpy instead of tokenising and stemming every candidate again.

Contract: `analyse_paper` is the index's own analysis of one paper (text.tokens, text.terms, the lead
sentence, expand.text_facts), and `LexicalIndex` built from these records equals one built from the
texts. A record holds each term once, in the order the index meets it (title, abstract, lead), as a
64-bit hash of the term (`term_hash`), with its counts per field; the word counts of each field; and
the acronym facts of the text. `ANALYSER` names this analysis: change text.py, expand.py or this
module's rules and bump it, and every stored record is stale (store/terms.py analyses again).

`term_batch.pack_batch` makes the same packed records as `pack(analyse_paper(...))` for many papers
at once (the ingest's path; its contract, byte-identical records, is checked in tests/test_stored_terms.py).
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

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

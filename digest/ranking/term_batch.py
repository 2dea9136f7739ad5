"""Speed work: `pack_batch`, the stored term records (stored_terms) of many papers at once: the
ingest's way (ranking.term_workers runs it in worker processes).

Contract: `pack_batch(docs)` is `[stored_terms.pack(stored_terms.analyse_paper(t, a)) for t, a in docs]`,
byte for byte (checked in tests/test_stored_terms.py on real, synthetic and corner texts, across
batches, with the tables starting over, with and without breaks at stop words).

How: each text is cut into pieces by one regex (`_SCAN`: the words of `text.tokens` and the separators
between its runs, in order). A table remembers what the analysis makes of each distinct piece: its
stem as a term (or that it is a dropped word, or a separator), and its stem and capitals as a plain
word of the acronym facts (expand.text_facts). A new piece is analysed once, in Python; everything
else (runs, bigrams, first occurrences, counts per field, the facts' counts) is numpy over the whole
batch, and the term hashes come from tables too (a stem's, a pair of stems'). The tables are bounded:
past `TABLE_LIMIT` pieces (or 4x as many pairs) they keep only what the last batch used.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from itertools import repeat

import numpy as np

from digest.ranking import stored_terms, text
from digest.ranking.expand import TextFacts, definitions

TABLE_LIMIT = 50_000  # distinct pieces (and 4x as many stem pairs) remembered before the tables shrink
CHUNK = 500  # papers analysed at once (numpy's working memory is some 20 KB a paper)
# A word or a separator, left to right: the words of `text.tokens`, each run of them ended where
# `text._SEGMENTS` would split (its matches never start with a word character, so a word never hides one).
_SCAN = re.compile(f"[A-Za-z0-9]+|{text._SEGMENTS.pattern}")
_SEPARATOR, _DROPPED = -2, -1  # a piece's term stem when it is not a term
_DIGITS = "0123456789"
_PAIR = 1 << 31  # a stem pair's key: a * _PAIR + b (stem ids stay far below it: the tables are bounded)


class _Tables:
    """What the analysis makes of each piece (its row: the stem ids of its term and of its plain word,
    and whether that word has capitals after its first letter), each stem's term hash and each stem
    pair's. Rows and ids are positions in the arrays, in the order they were first met."""

    def __init__(self) -> None:
        self.piece: dict[str, int] = {}  # raw piece -> its row
        self.raws: list[str] = []  # row -> raw piece
        self.info = np.empty((0, 3), np.int64)  # row -> term stem (or < 0), plain stem (or -1), capitals
        self.stem: dict[str, int] = {}  # stem -> stem id
        self.stems: list[str] = []  # stem id -> stem
        self.hashes = np.empty(0, np.uint64)  # stem id -> term_hash(stem)
        self.pairs: dict[int, int] = {}  # pair key -> its row
        self.pair_keys = np.empty(0, np.int64)  # row -> pair key
        self.pair_hash = np.empty(0, np.uint64)  # row -> term_hash(f"{stem a} {stem b}")
        self.lower_stems: dict[str, str] = {}  # lower-case word -> text.stem of it
        self.used: tuple[list, list] = ([], [])  # the piece and pair rows the last batch used

    def rows(self, pieces: list[str]) -> np.ndarray:
        """The row of each piece."""
        return _rows(self.piece, pieces, self._learn)

    def pair_hashes(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """term_hash(f"{stem a} {stem b}") of each pair of stem ids."""
        rows = _rows(self.pairs, (a * _PAIR + b).tolist(), self._learn_pairs)
        self.used[1].append(np.unique(rows))
        return self.pair_hash[rows]

    def _learn(self, new: list[str]) -> None:
        info = np.array([self._row(raw) for raw in new], np.int64).reshape(-1, 3)
        self.info = np.concatenate([self.info, info]) if len(self.info) else info
        self.raws += new

    def _learn_pairs(self, new: list[int]) -> None:
        stems = self.stems
        hashes = [text.term_hash(f"{stems[k // _PAIR]} {stems[k % _PAIR]}") for k in new]
        self.pair_keys = np.concatenate([self.pair_keys, np.array(new, np.int64)])
        self.pair_hash = np.concatenate([self.pair_hash, np.array(hashes, np.uint64)])

    def _row(self, raw: str) -> tuple[int, int, int]:
        if not raw[0].isalnum():
            return _SEPARATOR, -1, 0
        word, _ = text._fold(raw, False)  # the stem does not depend on the surface form kept
        if word in text.STOP_WORDS or (len(word) < 2 and not word.isdigit()):
            term = _DROPPED
        else:
            term = self._stem_id(self.stem_lower(word))
        plain = raw.lstrip(_DIGITS)  # expand._PLAIN_WORD's match in this piece, if any
        if len(plain) < 2:
            return term, -1, 0
        tail = plain[1:]
        return term, self._stem_id(self.stem_lower(plain.lower())), int(tail != tail.lower())

    def stem_lower(self, word: str) -> str:
        got = self.lower_stems.get(word)
        if got is None:
            if len(self.lower_stems) >= 2 * TABLE_LIMIT:
                self.lower_stems.clear()
            got = self.lower_stems[word] = text.stem.__wrapped__(word)  # uncached: bounded here
        return got

    def _stem_id(self, stem: str) -> int:
        got = self.stem.get(stem)
        if got is None:
            got = self.stem[stem] = len(self.stems)
            self.stems.append(stem)
            if got >= len(self.hashes):
                self.hashes = np.resize(self.hashes, max(1024, 2 * got))
            self.hashes[got] = text.term_hash(stem)
        return got

    def bounded(self) -> _Tables:
        """These tables, or when they hold more than TABLE_LIMIT pieces (4x as many pairs) new ones
        with only what the last batch used: the words and pairs met again and again stay."""
        if len(self.raws) <= TABLE_LIMIT and len(self.pair_keys) <= 4 * TABLE_LIMIT:
            return self
        out = _Tables()
        rows, pair_rows = (np.unique(np.concatenate([np.empty(0, np.int64), *r])) for r in self.used)
        info, keys = self.info[rows], self.pair_keys[pair_rows]
        a, b = keys // _PAIR, keys % _PAIR
        stems = np.unique(np.concatenate([info[:, 0][info[:, 0] >= 0], info[:, 1][info[:, 1] >= 0], a, b]))
        new_id = np.full(len(self.stems), -1, np.int64)
        new_id[stems] = np.arange(len(stems))
        info[:, :2] = np.where(info[:, :2] >= 0, new_id[np.maximum(info[:, :2], 0)], info[:, :2])
        out.stems = [self.stems[i] for i in stems.tolist()]
        out.stem = dict(zip(out.stems, range(len(stems)), strict=True))
        out.hashes = self.hashes[stems]
        out.raws = [self.raws[i] for i in rows.tolist()]
        out.piece = dict(zip(out.raws, range(len(rows)), strict=True))
        out.info = info
        out.pair_keys = new_id[a] * _PAIR + new_id[b]
        out.pairs = dict(zip(out.pair_keys.tolist(), range(len(pair_rows)), strict=True))
        out.pair_hash = self.pair_hash[pair_rows]
        return out


def _rows(table: dict, keys: list, learn: Callable[[list], None]) -> np.ndarray:
    """The row of each key in `table` (a key -> row dict); `learn(new)` first makes the rows of the
    keys not seen before, in the order met."""
    rows = np.fromiter(map(table.get, keys, repeat(-1)), np.int64, len(keys))
    missing = np.flatnonzero(rows < 0).tolist()
    if missing:
        new = list(dict.fromkeys([keys[i] for i in missing]))
        learn(new)
        table.update(zip(new, range(len(table), len(table) + len(new)), strict=True))
        rows[missing] = list(map(table.__getitem__, [keys[i] for i in missing]))
    return rows


_tables = _Tables()


def reset() -> None:
    """Start the tables over (they also shrink by themselves, see `_Tables.bounded`)."""
    global _tables
    _tables = _Tables()


def pack_batch(docs: Sequence[tuple[str, str]]) -> list[bytes]:
    """`stored_terms.pack(stored_terms.analyse_paper(title, abstract))` of each (title, abstract)."""
    if not docs:
        return []
    global _tables
    tables = _tables
    tables.used = ([], [])
    out = [b for start in range(0, len(docs), CHUNK) for b in _pack(tables, docs[start : start + CHUNK])]
    _tables = tables.bounded()
    return out


def _pack(tables: _Tables, docs: Sequence[tuple[str, str]]) -> list[bytes]:
    scan = _SCAN.findall
    pieces: list[str] = []
    lens = np.empty(3 * len(docs), np.int64)  # pieces of each paper's title, lead sentence, rest of abstract
    for d, (title, abstract) in enumerate(docs):
        lead = stored_terms.first_sentence(abstract)
        at = len(pieces)
        pieces += scan(title)
        lens[3 * d] = len(pieces) - at
        at = len(pieces)
        pieces += scan(lead)  # the abstract's first runs are its lead's (the cut is a separator)
        lens[3 * d + 1] = len(pieces) - at
        at = len(pieces)
        pieces += scan(abstract, len(lead))
        lens[3 * d + 2] = len(pieces) - at
    rows = tables.rows(pieces)
    tables.used[0].append(np.unique(rows))
    del pieces
    seg = np.repeat(np.arange(3 * len(docs), dtype=np.int64), lens)  # 3 * paper + field, of each piece
    terms, words = _terms(tables, rows, seg, lens)
    out = []
    for arrays, counts in zip(terms, words, strict=True):
        out.append(b"".join([stored_terms._HEAD.pack(b"TRM1", len(arrays[0]) // 8, *counts), *arrays]))
    for d, facts in _facts(tables, docs, rows, seg).items():
        out[d] += b"".join(stored_terms._packed_facts(facts))
    return out


def _terms(tables: _Tables, rows: np.ndarray, seg: np.ndarray, lens: np.ndarray,
           ) -> tuple[list[list[bytes]], list[list[int]]]:
    """Each paper's records' arrays (hashes, title, abstract, lead counts as bytes) and word counts."""
    n_docs = len(lens) // 3
    stem = tables.info[rows, 0]
    breaks = stem == _SEPARATOR
    if text.BREAK_AT_STOP_WORDS:
        breaks |= stem == _DROPPED
    starts = np.cumsum(lens) - lens
    breaks[starts[starts < len(breaks)]] = True  # each field starts its own runs
    kept = np.flatnonzero(stem >= 0)
    run = np.cumsum(breaks)[kept]  # a run label for each kept word, in order
    a, seg = stem[kept], seg[kept]
    k = len(kept)
    counts = np.bincount(seg, minlength=3 * n_docs).reshape(-1, 3)  # words of title, lead, rest
    first = np.ones(k, bool)
    first[1:] = run[1:] != run[:-1]
    run_start = np.flatnonzero(first)  # index (in kept) where each run starts
    run_index = np.cumsum(first) - 1
    run_len = np.diff(np.append(run_start, k))
    base = run_start[run_index] - run_index  # where a run's terms start in the terms' order, less its start
    pair = ~first[1:]  # kept word i and i + 1 make a bigram
    idx = np.arange(k)
    # Each paper's terms in the order `text.terms` makes them: per run, its stems, then its bigrams.
    total = 2 * k - len(run_start)
    key = np.empty(total, np.int64)
    where = np.empty(total, np.int64)
    at_uni = base + idx
    key[at_uni] = a
    where[at_uni] = seg
    at_bi = (base + run_len[run_index] + idx)[:-1][pair]
    n_stems = len(tables.stems)
    key[at_bi] = n_stems + a[:-1][pair] * n_stems + a[1:][pair]
    where[at_bi] = seg[:-1][pair]
    doc, part = where // 3, where % 3
    span = max(n_stems + n_stems * n_stems, 1)
    assert span * max(n_docs, 1) < 1 << 62
    uniq, at, inverse = np.unique(doc * span + key, return_index=True, return_inverse=True)
    # per (paper, term): [title, lead (counted in the abstract too), rest of the abstract] occurrences
    per = np.bincount(inverse.ravel() * 3 + part, minlength=3 * len(uniq)).reshape(-1, 3)
    order = np.argsort(at, kind="stable")  # each paper's terms in first-occurrence order, paper by paper
    uniq, per = uniq[order], per[order]
    term = uniq % span
    hashes = np.empty(len(term), np.uint64)
    single = term < n_stems
    hashes[single] = tables.hashes[term[single]]
    two = term[~single] - n_stems
    hashes[~single] = tables.pair_hashes(two // n_stems, two % n_stems)
    ends = np.cumsum(np.bincount(uniq // span, minlength=n_docs)).tolist()
    hb = hashes.astype("<u8").tobytes()
    tb = per[:, 0].astype("<u2").tobytes()
    ab = (per[:, 1] + per[:, 2]).astype("<u2").tobytes()
    lb = per[:, 1].astype("<u2").tobytes()
    out = []
    start = 0
    for end in ends:
        out.append([hb[8 * start : 8 * end], tb[2 * start : 2 * end], ab[2 * start : 2 * end],
                    lb[2 * start : 2 * end]])
        start = end
    words = np.stack([counts[:, 0], counts[:, 1] + counts[:, 2], counts[:, 1]], axis=1).tolist()
    return out, words


def _facts(tables: _Tables, docs: Sequence[tuple[str, str]], rows: np.ndarray,
           seg: np.ndarray) -> dict[int, TextFacts]:
    """expand.text_facts of each paper's f"{title}. {abstract}" that defines acronyms, by paper."""
    found = {}
    for d, (title, abstract) in enumerate(docs):
        if "(" in abstract or "(" in title:
            got = definitions(f"{title}. {abstract}", tables.stem_lower)
            if got:
                found[d] = got
    if not found:
        return {}
    with_facts = np.zeros(len(docs), bool)
    with_facts[list(found)] = True
    doc = seg // 3
    pick = with_facts[doc]
    info = tables.info[rows[pick]]
    stem, upper, doc = info[:, 1], info[:, 2], doc[pick]
    plain = stem >= 0
    stem, upper, doc = stem[plain], upper[plain], doc[plain]
    n_stems = len(tables.stems)
    uniq, at, inverse = np.unique(doc * n_stems + stem, return_index=True, return_inverse=True)
    per = np.bincount(inverse.ravel() * 2 + upper, minlength=2 * len(uniq)).reshape(-1, 2)
    order = np.argsort(at, kind="stable")
    uniq, per = uniq[order], per[order]
    hashes = tables.hashes[uniq % n_stems]
    lower, upper = per[:, 0].astype(np.uint32), per[:, 1].astype(np.uint32)
    ends = np.cumsum(np.bincount(uniq // n_stems, minlength=len(docs)))
    out = {}
    for d, got in found.items():
        start, end = (int(ends[d - 1]) if d else 0), int(ends[d])
        out[d] = TextFacts(got, hashes[start:end], lower[start:end], upper[start:end])
    return out

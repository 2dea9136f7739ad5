"""Speed work: the lexical index's matrices assembled with numpy from per-paper records
(stored_terms.Analysed), in chunks, so memory is the matrices plus one chunk.

Contract (what index.LexicalIndex relies on): the columns are the terms in the order the documents
first use them (document order, then title, abstract, lead within one), as the index always numbered
them, and each row stores its entries in column order (sorted indices); W holds each term's BM25F
weight, float32, from the same float64 arithmetic as before:
tf = title_weight * title + abstract + (lead_weight - 1) * lead, length = the same sums of word counts,
w = tf (k1 + 1) / (tf + k1 (1 - b + b length / mean length)) * idf.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

import numpy as np
import scipy.sparse as sp

from digest.ranking.sorting import by_row, unique
from digest.ranking.stored_terms import Analysed
from digest.ranking.text import term_hash

CHUNK = 4096  # documents assembled at a time
ROWS = 1 << 20  # nonzeros weighted at a time (bounds the float64 temporaries)


class Vocab:
    """term -> column, by the term's 64-bit hash (a sorted array: no Python object per term). The terms
    looked up one at a time (the topics' words, asked again for every subscriber and pick) are
    remembered in a dict: a hash and a binary search cost microseconds, and a run asks hundreds of
    thousands of times."""

    def __init__(self) -> None:
        self.keys = np.empty(0, np.uint64)
        self.cols = np.empty(0, np.int32)
        self._asked: dict[str, int | None] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def get(self, term: str, default: int | None = None) -> int | None:
        try:
            col = self._asked[term]
        except KeyError:
            col = self._asked[term] = self._find(term)
        return default if col is None else col

    def _find(self, term: str) -> int | None:
        if not len(self.keys):
            return None
        h = np.uint64(term_hash(term))
        i = int(np.searchsorted(self.keys, h))
        return int(self.cols[i]) if i < len(self.keys) and self.keys[i] == h else None

    def __contains__(self, term: str) -> bool:
        return self.get(term) is not None

    def __getitem__(self, term: str) -> int:
        col = self.get(term)
        if col is None:
            raise KeyError(term)
        return col

    def columns(self, hashes: np.ndarray) -> np.ndarray:
        """The columns of a chunk's term hashes; terms never seen get the next columns, in the order
        of their first occurrence in `hashes`."""
        # each distinct hash looked up once, in sorted order (a sweep through the keys, not a random
        # search per term: linear in practice)
        uniq, first, inverse = unique(hashes)
        col = np.empty(len(uniq), np.int32)
        pos = np.searchsorted(self.keys, uniq)
        known = np.zeros(len(uniq), bool)
        if len(self.keys):
            clipped = np.minimum(pos, len(self.keys) - 1)
            known = self.keys[clipped] == uniq
            col[known] = self.cols[clipped[known]]
        new = ~known
        if new.any():
            fresh, at = np.empty(int(new.sum()), np.int32), pos[new]
            start = len(self.keys)
            fresh[np.argsort(first[new], kind="stable")] = np.arange(start, start + len(fresh))
            col[new] = fresh
            self.keys, self.cols = np.insert(self.keys, at, uniq[new]), np.insert(self.cols, at, fresh)
            self._asked.clear()  # a term not found before may be here now
        return col[inverse]


@dataclass
class Built:
    vocab: Vocab
    W: sp.csr_matrix  # documents x terms, BM25F weights (float32)
    abstract_tf: sp.csr_matrix  # documents x terms, the abstract's own counts (float32; W's pattern)
    df: np.ndarray
    idf: np.ndarray


def assemble(records: Iterable[Analysed], n_docs: int, params) -> Built:
    """The index matrices of `n_docs` documents' records (an iterator is read once, in chunks)."""
    p, vocab = params, Vocab()
    cols, tfs, abstracts = Growing(np.int32), Growing(np.float32), Growing(np.float32)
    counts = np.zeros(n_docs, np.int64)
    lengths = np.zeros(n_docs, np.float64)
    it: Iterator[Analysed] = iter(records)
    d = 0
    while chunk := list(islice(it, CHUNK)):
        for k, a in enumerate(chunk):
            counts[d + k] = len(a.hashes)
            lengths[d + k] = p.title_weight * a.title_words + a.abstract_words
            if p.lead_weight != 1.0:
                lengths[d + k] += (p.lead_weight - 1.0) * a.lead_words
        col = vocab.columns(np.concatenate([a.hashes for a in chunk]))
        title = np.concatenate([a.title for a in chunk]).astype(np.float64)
        abstract = np.concatenate([a.abstract for a in chunk]).astype(np.float64)
        tf = title * p.title_weight + abstract
        if p.lead_weight != 1.0:
            tf += np.concatenate([a.lead for a in chunk]) * (p.lead_weight - 1.0)
        keep = tf > 0  # a term only the lead sentence has, without lead weight: not in the document
        if not keep.all():
            starts = np.repeat(np.arange(len(chunk)), counts[d : d + len(chunk)])
            counts[d : d + len(chunk)] = np.bincount(starts[keep], minlength=len(chunk))
            col, tf, abstract = col[keep], tf[keep], abstract[keep]
        # each row's entries by column: a product with W sums its terms in column order whichever
        # side W is on (index.LexicalIndex.scores multiplies W by the queries, not their transpose)
        # (a document holds each term once: one order by row, column; each row sorted alone, in C)
        col, order = by_row(col, counts[d : d + len(chunk)], len(vocab))
        cols.add(col)
        tfs.add(tf[order])
        abstracts.add(abstract[order])
        d += len(chunk)
        del chunk, title
    if d != n_docs:
        raise ValueError(f"{d} analysed records for {n_docs} documents")
    indptr = np.zeros(n_docs + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    col, data, abstract_data = cols.done(), tfs.done(), abstracts.done()
    n_terms = len(vocab)
    df = np.zeros(n_terms, np.float64)
    for lo in range(0, len(col), ROWS):  # bincount copies its input to int64: a slice at a time
        df += np.bincount(col[lo : lo + ROWS], minlength=n_terms)
    idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
    avg = lengths.mean() if n_docs and lengths.mean() > 0 else 1.0
    norm = p.k1 * (1 - p.b + p.b * lengths / avg)
    for lo in range(0, len(data), ROWS):  # in place: tf becomes its weight
        hi = min(len(data), lo + ROWS)
        tf = data[lo:hi].astype(np.float64)
        w = tf * (p.k1 + 1) / (tf + norm[_rows_of(indptr, lo, hi)])
        data[lo:hi] = (w * idf[col[lo:hi]]).astype(np.float32)
    shape = (n_docs, n_terms)
    W = sp.csr_matrix((data, col, indptr), shape=shape, copy=False)
    abstract_tf = sp.csr_matrix((abstract_data, col, indptr), shape=shape, copy=False)
    return Built(vocab, W, abstract_tf, df, idf)


class Growing:
    """An array appended to a chunk at a time, grown in place (`ndarray.resize`: realloc, which moves a
    large block's pages without copying them) rather than concatenated from a list of chunks at the
    end: the peak is the array and one chunk, not the chunks and their concatenation."""

    def __init__(self, dtype) -> None:
        self._a, self._n = np.empty(1 << 16, dtype), 0

    def add(self, part: np.ndarray) -> None:
        need = self._n + len(part)
        if need > len(self._a):
            self._a.resize(max(need, len(self._a) * 3 // 2), refcheck=False)  # no view of it exists
        self._a[self._n : need] = part  # cast to the array's dtype, as astype would
        self._n = need

    def done(self) -> np.ndarray:
        self._a.resize(self._n, refcheck=False)
        a, self._a = self._a, np.empty(0, self._a.dtype)
        return a


def unit_rows(M: sp.csr_matrix, idf: np.ndarray | None = None, *, in_place: bool = False) -> sp.csr_matrix:
    """M's rows (times idf per column, when given) at unit length, float32, without stored zeros.
    `in_place`: computed over M's own data (M is spent) and sharing its indices, its stored zeros
    kept (near_duplicates.similar_pairs skips them): no copy of any entry."""
    squares = np.zeros(M.shape[0], np.float64)
    for lo, v in _weighted(M, idf):
        squares += np.bincount(_rows_of(M.indptr, lo, lo + len(v)), weights=v * v, minlength=M.shape[0])
    scale = 1 / np.maximum(np.sqrt(squares), 1e-9)
    data = M.data if in_place and M.data.dtype == np.float32 else np.empty(len(M.data), np.float32)
    for lo, v in _weighted(M, idf):
        data[lo : lo + len(v)] = v * scale[_rows_of(M.indptr, lo, lo + len(v))]
    if in_place:
        return sp.csr_matrix((data, M.indices, M.indptr), shape=M.shape, copy=False)
    out = sp.csr_matrix((data, M.indices.copy(), M.indptr.copy()), shape=M.shape)
    out.eliminate_zeros()
    return out


def _rows_of(indptr: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The row of each stored entry lo..hi of a CSR matrix (a slice at a time: no array per entry)."""
    if hi <= lo:
        return np.empty(0, np.int64)
    first, last = np.searchsorted(indptr, [lo, hi - 1], side="right") - 1
    starts = np.maximum(indptr[first : last + 1], lo)
    ends = np.minimum(indptr[first + 1 : last + 2], hi)
    return np.repeat(np.arange(first, last + 1, dtype=np.int64), ends - starts)


def _weighted(M: sp.csr_matrix, idf: np.ndarray | None) -> Iterator[tuple[int, np.ndarray]]:
    for lo in range(0, len(M.data), ROWS):
        v = M.data[lo : lo + ROWS].astype(np.float64)
        if idf is not None:
            v *= idf[M.indices[lo : lo + ROWS]]
        yield lo, v

"""Speed work: the pairs of papers whose abstracts have cosine >= a threshold, without comparing all
pairs (prefix filtering, as in Bayardo, Ma and Srikant's All-Pairs).

Contract: `similar_pairs(unit, t)` returns every pair of rows of `unit` (rows at unit length, or empty;
stored zeros are skipped, as if eliminated) whose cosine is >= t, and no other, checked with the exact
cosine; `corpus._group_of` joins them into
groups. Why no pair is missed: order the terms rarest first and cut each row where the rest of it (its
commoner terms) has norm below t (a small margin below, for rounding). Two rows with cosine >= t share
a term among the first parts of both: were every shared term in the rest of one of them, say the row
cut earlier in that order, their cosine would be at most that rest's norm, < t. So only rows that
share a term in their first parts are compared, and those are few: a paper's rarest terms (its
method's name, its own phrases) are seldom anyone else's.

MinHash LSH (datasketch) estimates set resemblance, not this weighted cosine, and misses a pair now
and then; this search is exact, and measured faster here (see the README, Benchmarks).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

from digest.ranking.sorting import by_row

MARGIN = 1e-3  # the cut is made this far below the threshold: rounding never hides a pair
PAIRS = 1 << 20  # candidate pairs verified at a time (bounds memory)
ROWS = 5_000  # rows whose first parts are found at a time


def similar_pairs(unit: sp.csr_matrix, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) row arrays, a < b, of the pairs with cosine >= threshold (each pair once)."""
    unit = unit.tocsr()
    firsts, seconds = [], []
    for a, b in _candidates(unit, threshold - MARGIN):
        cos = _cosines(unit, a, b)
        hit = cos >= threshold
        firsts.append(a[hit])
        seconds.append(b[hit])
    if not firsts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(firsts), np.concatenate(seconds)


def _candidates(unit: sp.csr_matrix, cut: float) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Distinct (a < b) pairs of rows sharing a term in their first parts, a bounded batch at a time."""
    n = unit.shape[0]
    df = np.zeros(unit.shape[1], np.int64)
    for lo in range(0, len(unit.indices), PAIRS):  # bincount copies its input to int64: a slice at a time
        used = unit.data[lo : lo + PAIRS] != 0
        df += np.bincount(unit.indices[lo : lo + PAIRS][used], minlength=unit.shape[1])
    rank = np.empty(unit.shape[1], np.int32)
    rank[np.argsort(df, kind="stable")] = np.arange(unit.shape[1], dtype=np.int32)  # rarest first
    del df
    # each row's first part, a block of rows at a time, as a sparse (rows x terms) pattern; by term
    # (CSC: each term's rows in increasing order) it lists the rows sharing each term, in 4 bytes an entry
    blocks = [_first_parts(unit[lo : lo + ROWS], rank, cut) for lo in range(0, n, ROWS)]
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.concatenate([np.diff(b.indptr) for b in blocks]) if blocks else [], out=indptr[1:])
    cols = np.concatenate([b.indices for b in blocks]) if blocks else np.empty(0, np.int32)
    del blocks
    parts = sp.csr_matrix((np.ones(len(cols), np.int8), cols, indptr), shape=unit.shape)
    del cols, indptr
    by_term = parts.tocsc()
    del parts
    r, c_bounds = by_term.indices, by_term.indptr
    del by_term
    sizes = np.diff(c_bounds)
    big = sizes > 1
    starts, sizes = c_bounds[:-1][big].astype(np.int64), sizes[big].astype(np.int64)
    pairs = sizes * (sizes - 1) // 2
    batch = np.cumsum(pairs) // PAIRS  # groups in batches of about PAIRS pairs
    cuts = np.flatnonzero(np.r_[True, batch[1:] != batch[:-1], True])
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        at, m = starts[lo:hi], sizes[lo:hi]
        pos = _ranges(at, m)  # every member's place in r
        partners = np.repeat(at + m, m) - pos - 1  # the members after it in its group
        left = np.repeat(pos, partners)
        right = left + 1 + _ranges(np.zeros(len(partners), np.int64), partners)
        yield _distinct(r[left], r[right], n)


def _first_parts(block: sp.csr_matrix, rank: np.ndarray, cut: float) -> sp.csr_matrix:
    """The pattern (rows x terms, the block's indptr and indices) of the entries in each row's first
    part: its rarest terms, up to where the rest of the row (its commoner terms) has norm below `cut`."""
    if (block.data == 0).any():
        block = block.copy()
        block.eliminate_zeros()
    counts = np.diff(block.indptr)
    rows = np.repeat(np.arange(block.shape[0], dtype=np.int64), counts)
    cols = block.indices
    width = len(rank)
    # within each row, commonest first: a running sum of squares is then the norm of the rest
    _, order = by_row(width - 1 - rank[cols], counts, width)
    running = np.cumsum(block.data[order].astype(np.float64) ** 2)
    starts = block.indptr[:-1]
    before = np.where(starts > 0, running[np.maximum(starts - 1, 0)], 0.0) if len(running) else starts
    rest = running - np.repeat(before, counts)  # squared norm from this term to the commonest
    first = np.sort(order[rest >= cut * cut])  # back in the row's own order
    indptr = np.zeros(block.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows[first], minlength=block.shape[0]), out=indptr[1:])
    return sp.csr_matrix((np.ones(len(first), np.int8), cols[first].astype(np.int32), indptr),
                         shape=block.shape)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """concat(arange(s, s + k) for s, k in zip(starts, lengths)), vectorised."""
    total = int(lengths.sum())
    if not total:
        return np.empty(0, np.int64)
    before = np.cumsum(lengths) - lengths
    return np.repeat(starts - before, lengths) + np.arange(total)


def _distinct(a: np.ndarray, b: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    keys = np.unique(np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b))
    return keys // n, keys % n


def _cosines(unit: sp.csr_matrix, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The cosine of each pair (a[k], b[k]): the dot product of two unit rows."""
    out = np.empty(len(a), np.float32)
    step = 1 << 12
    for lo in range(0, len(a), step):
        A, B = unit[a[lo : lo + step]], unit[b[lo : lo + step]]
        out[lo : lo + step] = np.asarray(A.multiply(B).sum(axis=1)).ravel()
    return out

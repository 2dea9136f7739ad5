"""Speed work: the sorts of the index's assembly (assemble, expand.AcronymLearner) and of the
near-duplicate search, made cheaper. tests/test_ranking_scale.py compares both with the plain numpy.

Contracts:
- `unique(a)`: the same three arrays as `np.unique(a, return_index=True, return_inverse=True)` (the
  sorted distinct values, the index of each one's first occurrence, the inverse), by one stable argsort
  (about twice as fast as the quicksort np.unique runs for uint64 on this machine) and a scatter.
- `by_row(keys, counts, width)`: for rows of `counts` entries one after another, each row's keys
  distinct and below `width`: the keys sorted within each row and the order that sorts them, what
  `np.argsort(row << 32 | key)` gives, by scipy's per-row sort in C (each row is small: far cheaper
  than sorting all entries).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def unique(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(a, kind="stable")
    ordered = a[order]
    head = np.empty(len(a), bool)
    head[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=head[1:])
    starts = np.flatnonzero(head)
    inverse = np.empty(len(a), np.intp)
    inverse[order] = np.cumsum(head) - 1
    return ordered[starts], order[starts], inverse


def by_row(keys: np.ndarray, counts: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    indptr = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    m = sp.csr_matrix((np.arange(len(keys), dtype=np.int64), keys.astype(np.int32), indptr),
                      shape=(len(counts), max(width, 1)), copy=False)
    m.has_sorted_indices = False
    m.sort_indices()
    return m.indices, m.data

"""Speed work: `np.unique(a, return_index=True, return_inverse=True)` for the large arrays of 64-bit term
hashes the index is assembled from (assemble.Vocab, expand.AcronymLearner).

Contract: the same three arrays as np.unique (the sorted distinct values, the index of each one's first
occurrence, the inverse), by one stable argsort (numpy's radix/tim sort: about twice as fast as the
quicksort np.unique runs for uint64 on this machine) and a scatter; tests/test_ranking_scale.py compares
it with np.unique.
"""

from __future__ import annotations

import numpy as np


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

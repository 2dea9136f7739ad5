"""Sharing a subscriber's picks out among their topics, so that one topic does not crowd out the others."""

from __future__ import annotations

import numpy as np


def balanced(scores: np.ndarray, group: np.ndarray, matched: np.ndarray, max_items: np.ndarray, k: int,
              ) -> np.ndarray:
    """Which of each row's pool (sorted best first) to pick, as positions in score order.

    One topic must not crowd out the others: first every topic that has candidates gets up to an
    equal share of the row's max_items (ceil(max_items / topics with candidates)), best first; slots
    left over go to the best of the rest, so no slot stays empty while candidates remain. Papers that
    match no topic (feedback or trending picks) count as one more group."""
    m, pool = scores.shape
    live = np.isfinite(scores)
    g = np.where(matched, group.astype(np.int64), -1)
    groups = np.unique(g)
    onehot = (g[..., None] == groups) & live[..., None]  # (rows, pool, groups)
    nth = np.take_along_axis(np.cumsum(onehot, axis=1), np.searchsorted(groups, g)[..., None],
                             axis=2)[..., 0] - 1
    share = -(-max_items // np.maximum(onehot.any(axis=1).sum(axis=1), 1))  # ceil division
    first = live & (nth < share[:, None])
    priority = np.where(first, 0, np.where(live, 1, 2)) * pool + np.arange(pool)
    picked = np.argsort(priority, axis=1, kind="stable")[:, :k]  # each row's k best by priority
    cut = np.arange(k)[None, :] >= max_items[:, None]  # beyond a row's own max_items: not picked
    picked = np.where(cut, pool + np.arange(k), picked)  # sort those to the end ...
    picked.sort(axis=1)
    return np.minimum(picked, pool - 1) if pool else picked  # ... where the caller's max_items cut drops them

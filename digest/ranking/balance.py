"""Sharing a subscriber's picks out among their topics, so that one topic does not crowd out the others,
each topic's share in proportion to its weight (a reader's "diffusion models=2")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from digest.records import Profile, Reason


def topic_weights(profiles: Sequence[Profile]) -> np.ndarray | None:
    """(profiles x topic slots) each topic's weight, in the ranker's slot order (blank topics dropped),
    1 past a profile's own topics; None when every weight is 1 (the shares are then equal)."""
    if not any(w != 1 for pr in profiles for w in pr.weights):
        return None
    rows = [[w for t, w in zip(pr.topics, pr.weights or [1.0] * len(pr.topics), strict=True) if t.strip()]
            for pr in profiles]
    out = np.ones((len(rows), max(map(len, rows))), np.float64)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


def balanced(scores: np.ndarray, group: np.ndarray, matched: np.ndarray, max_items: np.ndarray, k: int,
             weights: np.ndarray | None = None) -> np.ndarray:
    """Which of each row's pool (sorted best first) to pick, as positions in score order.

    One topic must not crowd out the others: first every topic that has candidates gets up to its share
    of the row's max_items, best first; slots left over go to the best of the rest, so no slot stays
    empty while candidates remain. A topic's share is ceil(max_items x its weight / the weights of the
    topics with candidates), equal shares when `weights` (rows x topic slots, `topic_weights`) is None.
    Papers that match no topic (feedback or trending picks) count as one more group, of weight 1."""
    m, pool = scores.shape
    live = np.isfinite(scores)
    g = np.where(matched, group.astype(np.int64), -1)
    groups = np.unique(g)
    onehot = (g[..., None] == groups) & live[..., None]  # (rows, pool, groups)
    at = np.searchsorted(groups, g)  # (rows, pool): each paper's group column
    nth = np.take_along_axis(np.cumsum(onehot, axis=1), at[..., None], axis=2)[..., 0] - 1
    present = onehot.any(axis=1)  # (rows, groups): the groups with candidates
    if weights is None:
        share = -(-max_items // np.maximum(present.sum(axis=1), 1))  # ceil division
        mine = share[:, None]
    else:
        w = np.ones((m, len(groups)))  # the unmatched group (-1) weighs 1
        topical = groups >= 0
        w[:, topical] = _pad(weights, m, int(groups.max(initial=-1)) + 1)[:, groups[topical]]
        total = np.maximum((w * present).sum(axis=1, keepdims=True), 1e-9)
        shares = np.ceil(max_items[:, None] * w / total - 1e-9)  # (rows, groups)
        mine = np.take_along_axis(shares, at, axis=1)
    first = live & (nth < mine)
    priority = np.where(first, 0, np.where(live, 1, 2)) * pool + np.arange(pool)
    picked = np.argsort(priority, axis=1, kind="stable")[:, :k]  # each row's k best by priority
    cut = np.arange(k)[None, :] >= max_items[:, None]  # beyond a row's own max_items: not picked
    picked = np.where(cut, pool + np.arange(k), picked)  # sort those to the end ...
    picked.sort(axis=1)
    return np.minimum(picked, pool - 1) if pool else picked  # ... where the caller's max_items cut drops them


def weighed(scores: np.ndarray, group: np.ndarray, matched: np.ndarray, max_items: np.ndarray, k: int,
            weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """`balanced` with the topics' weights, and (rows x k) whether each pick owes its place to them: a
    pick the equal shares would not have made (None without weights)."""
    picked = balanced(scores, group, matched, max_items, k, weights)
    if weights is None:
        return picked, None
    equal = balanced(scores, group, matched, max_items, k)
    own = np.arange(k)[None, :] < max_items[:, None]
    return picked, ~(picked[:, :, None] == np.where(own, equal, -1)[:, None, :]).any(axis=2)


def with_weight(reason: Reason, profile: Profile, slot: int) -> Reason:
    """A pick's reason, saying its topic's weight (that of the profile's topic `slot`, in the ranker's
    order) when it is not 1: the pick owes its place to it (`weighed`)."""
    weights = profile.weights or [1.0] * len(profile.topics)
    weight = [w for t, w in zip(profile.topics, weights, strict=True) if t.strip()][slot]
    return replace(reason, weight=weight) if weight != 1 else reason


def _pad(weights: np.ndarray, rows: int, width: int) -> np.ndarray:
    """`weights` widened with 1s to at least `width` topic slots."""
    if weights.shape[1] >= width:
        return weights
    return np.hstack([weights, np.ones((rows, width - weights.shape[1]))])

"""Make every item's code tuple unique, and measure how codes are shared.

Two strategies:

* ``extra_level`` (default, TIGER-style): append one more level holding, within each group of items
  that share the same ``L``-tuple, the rank ``0, 1, 2, ...`` of each item (best-quantized item first).
  Every learned code is kept, so prefixes keep their meaning; it always succeeds; every item gets the
  extra code (0 when it shares its tuple with nobody), so all tuples have ``L + 1`` codes. The extra
  level's codebook size is the largest group.
* ``reassign``: keep ``L`` levels; the best-quantized item of a group keeps its tuple, each other moves
  to the nearest *free* code of the last level under the same ``L-1`` prefix. Shorter tuples, but the
  moved items carry a last code that is not their nearest one, and it fails when more items share a
  prefix than the last level has codes.

The "best-quantized" order is the ``priority`` argument (lower first, e.g. the quantization error);
ties go to the earlier item, so the result is deterministic.
"""
from collections import Counter, defaultdict
from typing import Dict, Iterable, Optional, Sequence, Set, Tuple

import numpy as np

from recbole_qbert.errors import QBertError

STRATEGIES = ("extra_level", "reassign")


def _order(n: int, priority: Optional[np.ndarray]) -> np.ndarray:
    if priority is None:
        return np.arange(n)
    return np.lexsort((np.arange(n), np.asarray(priority, dtype=np.float64)))


def group_sizes(codes: np.ndarray) -> np.ndarray:
    """For each item, how many items (itself included) have exactly its tuple."""
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return counts[inverse.reshape(-1)]


def collision_stats(codes: np.ndarray) -> Dict[str, object]:
    """How many items share their whole tuple with another item."""
    codes = np.asarray(codes)
    n = len(codes)
    sizes = group_sizes(codes) if n else np.zeros(0, dtype=np.int64)
    n_unique = len(np.unique(codes, axis=0)) if n else 0
    histogram = Counter(int(s) for s in sizes[sizes > 1])
    return {
        "items": n,
        "unique_tuples": n_unique,
        "colliding_items": int((sizes > 1).sum()),
        "collision_rate": float((sizes > 1).mean()) if n else 0.0,        # items sharing their tuple
        "duplicate_rate": float((n - n_unique) / n) if n else 0.0,        # items beyond the first of a group
        "largest_group": int(sizes.max()) if n else 0,
        # group size -> number of such groups
        "groups_by_size": {str(s): c // s for s, c in sorted(histogram.items())},
    }


def prefix_stats(codes: np.ndarray) -> Dict[str, Dict[str, float]]:
    """Items per distinct prefix, for each prefix length 1..L."""
    codes = np.asarray(codes)
    out = {}
    for length in range(1, codes.shape[1] + 1):
        _, counts = np.unique(codes[:, :length], axis=0, return_counts=True)
        out[str(length)] = {
            "distinct_prefixes": int(len(counts)),
            "mean_items": round(float(counts.mean()), 3),
            "median_items": float(np.median(counts)),
            "max_items": int(counts.max()),
            "shared_prefixes": int((counts > 1).sum()),   # prefixes that more than one item has
            "items_in_shared_prefixes": int(counts[counts > 1].sum()),
        }
    return out


def _rank_within_groups(codes: np.ndarray, priority: Optional[np.ndarray]) -> Tuple[np.ndarray, int]:
    """The extra level without existing tuples, vectorised (a million items in about a second): each
    item's rank, in priority order, among the items sharing its tuple."""
    n = len(codes)
    if n == 0:
        return np.zeros((0, codes.shape[1] + 1), dtype=np.int64), 1
    dims = codes.max(axis=0) + 1
    if np.prod(dims.astype(np.float64)) < 2.0 ** 62:  # one integer per tuple: a much faster unique
        _, group = np.unique(np.ravel_multi_index(codes.T, dims), return_inverse=True)
    else:
        _, group = np.unique(codes, axis=0, return_inverse=True)
    group = group.reshape(-1)
    order = _order(n, priority)
    order = order[np.argsort(group[order], kind="stable")]  # by group, priority order inside each
    sorted_groups = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    extra = np.empty(n, dtype=np.int64)
    extra[order] = rank
    return np.concatenate([codes, extra[:, None]], axis=1), int(extra.max()) + 1


def resolve_extra_level(codes: np.ndarray, priority: Optional[np.ndarray] = None,
                        taken: Optional[Iterable[Sequence[int]]] = None) -> Tuple[np.ndarray, int]:
    """Append the disambiguation level. ``taken``: existing ``L+1``-tuples (for new items added to a
    finished assignment), whose extra codes are skipped. Returns ``(codes (n, L+1), extra level size)``."""
    codes = np.asarray(codes, dtype=np.int64)
    taken = list(taken or ())
    if not taken:
        return _rank_within_groups(codes, priority)
    used: Dict[Tuple[int, ...], Set[int]] = defaultdict(set)
    for t in taken:
        used[tuple(int(c) for c in t[:-1])].add(int(t[-1]))
    extra = np.zeros(len(codes), dtype=np.int64)
    for i in _order(len(codes), priority):
        key = tuple(codes[i].tolist())
        k = 0
        while k in used[key]:
            k += 1
        used[key].add(k)
        extra[i] = k
    size = max([int(extra.max()) + 1 if len(extra) else 1] + [max(s) + 1 for s in used.values() if s])
    return np.concatenate([codes, extra[:, None]], axis=1), size


def resolve_reassign(codes: np.ndarray, candidates: np.ndarray, priority: Optional[np.ndarray] = None,
                     taken: Optional[Iterable[Sequence[int]]] = None) -> np.ndarray:
    """Move colliding items to the nearest free last-level code. ``candidates`` ``(n, K)``: each item's
    last-level codes from nearest to farthest. Raises :class:`QBertError` when a prefix is full."""
    codes = np.asarray(codes, dtype=np.int64).copy()
    candidates = np.asarray(candidates, dtype=np.int64)
    if candidates.shape[0] != len(codes):
        raise QBertError(f"collision resolution: {candidates.shape[0]} candidate rows for {len(codes)} items")
    occupied: Set[Tuple[int, ...]] = {tuple(int(c) for c in t) for t in (taken or ())}
    keeper: Dict[Tuple[int, ...], int] = {}
    order = _order(len(codes), priority)
    for i in order:  # the best item of each group keeps its tuple (unless a taken tuple holds it)
        key = tuple(codes[i].tolist())
        if key not in occupied and key not in keeper:
            keeper[key] = int(i)
    occupied |= set(keeper)
    for i in order:
        key = tuple(codes[i].tolist())
        if keeper.get(key) == i:
            continue
        prefix = key[:-1]
        for c in candidates[i].tolist():
            if prefix + (c,) not in occupied:
                codes[i, -1] = c
                occupied.add(prefix + (c,))
                break
        else:
            raise QBertError(f"collision resolution 'reassign': every last-level code under prefix "
                             f"{list(prefix)} is taken; use collision_strategy: extra_level or a larger "
                             "codebook_size")
    return codes


def resolve(codes: np.ndarray, strategy: str, *, priority: Optional[np.ndarray] = None,
            candidates: Optional[np.ndarray] = None, taken=None) -> Tuple[np.ndarray, Optional[int]]:
    """Unique tuples by ``strategy``; returns ``(codes, extra level size or None)``."""
    if strategy == "extra_level":
        return resolve_extra_level(codes, priority, taken)
    if strategy == "reassign":
        if candidates is None:
            raise QBertError("collision resolution 'reassign' needs each item's ranked last-level codes")
        return resolve_reassign(codes, candidates, priority, taken), None
    raise QBertError(f"unknown collision_strategy {strategy!r}; choose one of {list(STRATEGIES)}")

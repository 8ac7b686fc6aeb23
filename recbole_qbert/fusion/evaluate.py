"""What a stage-1 run reports: alignment accuracy per view, gate depth, co-purchase AUC, nearest neighbours.

* **Alignment accuracy** of view ``m``: for each item with view ``m``, is the nearest projected view-``m``
  vector (cosine, over every item that has view ``m``) its own? Items with identical view content
  (same brand) count as its own. Chance is about ``1 / #distinct contents``.
* **Co-purchase AUC**: the probability that an item is closer (cosine) to an item bought next to it
  than to a uniformly random item. Pairs: *validation transitions* (each user's last training item and
  validation item), which stage 1 never sees; the subset of those pairs that never occur together in
  any training sequence; and adjacent pairs of training sequences (seen by the collaborative view, for
  reference).
"""
from typing import Dict, List, Optional, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from recbole_qbert.features.catalog import ItemCatalog


def retrieval_accuracy(queries: np.ndarray, targets: np.ndarray, query_rows: np.ndarray,
                       target_rows: np.ndarray, groups: np.ndarray, chunk: int = 2048) -> float:
    """Top-1 accuracy of finding each query row's own target among ``target_rows``.

    ``queries`` (N, d) and ``targets`` (N, d) normalised; ``groups`` (N,) content ids (equal ids = same content).
    """
    if len(query_rows) == 0 or len(target_rows) == 0:
        return float("nan")
    cand = torch.from_numpy(targets[target_rows])
    correct = 0
    for s in range(0, len(query_rows), chunk):
        rows = query_rows[s:s + chunk]
        best = (torch.from_numpy(queries[rows]) @ cand.t()).argmax(dim=1).numpy()
        correct += int((groups[target_rows[best]] == groups[rows]).sum())
    return correct / len(query_rows)


def alignment_accuracy(fused: np.ndarray, views: np.ndarray, mask: np.ndarray, groups: np.ndarray,
                       names: Sequence[str], rows: Optional[np.ndarray] = None) -> Dict[str, float]:
    """``{view: accuracy}``: fused vectors of ``rows`` (default all) retrieving their own view among all items."""
    out = {}
    for m, name in enumerate(names):
        present = np.flatnonzero(mask[:, m])
        query = present if rows is None else np.intersect1d(rows, present)
        out[name] = round(retrieval_accuracy(fused, views[:, m], query, present, groups[:, m]), 4)
    return out


def chance_accuracy(mask: np.ndarray, groups: np.ndarray, names: Sequence[str]) -> Dict[str, float]:
    return {n: round(1.0 / max(len(np.unique(groups[mask[:, m], m])), 1), 5) for m, n in enumerate(names)}


def pair_auc(vectors: np.ndarray, pairs: np.ndarray, rng: np.random.Generator,
             present: Optional[np.ndarray] = None) -> Dict[str, float]:
    """AUC of ``cos(a, b) > cos(a, c)`` for pairs ``(a, b)`` and a random ``c`` (ties count 1/2).

    With ``present`` (N,) bool, only pairs whose items both have the vector count, and ``c`` is drawn
    among items that have it; ``coverage`` is the share of pairs used.
    """
    n = len(vectors)
    pool = np.arange(n) if present is None else np.flatnonzero(present)
    if len(pairs) == 0 or len(pool) < 3:
        return {"auc": float("nan"), "pairs": 0, "coverage": 0.0}
    keep = pairs[:, 0] != pairs[:, 1]
    if present is not None:
        keep &= present[pairs[:, 0]] & present[pairs[:, 1]]
    used = pairs[keep]
    if len(used) == 0:
        return {"auc": float("nan"), "pairs": 0, "coverage": 0.0}
    c = pool[rng.integers(0, len(pool), size=len(used))]
    clash = (c == used[:, 0]) | (c == used[:, 1])
    while clash.any():
        c[clash] = pool[rng.integers(0, len(pool), size=int(clash.sum()))]
        clash = (c == used[:, 0]) | (c == used[:, 1])
    norm = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    pos = np.einsum("nd,nd->n", norm[used[:, 0]], norm[used[:, 1]])
    neg = np.einsum("nd,nd->n", norm[used[:, 0]], norm[c])
    auc = float(np.mean((pos > neg) + 0.5 * (pos == neg)))
    return {"auc": round(auc, 4), "pairs": int(len(used)), "coverage": round(len(used) / len(pairs), 4)}


def evaluation_pairs(catalog: ItemCatalog, rng: np.random.Generator, max_train_pairs: int = 50000
                     ) -> Dict[str, np.ndarray]:
    """``valid`` transitions, those ``valid_unseen`` in any training sequence, and ``train_adjacent`` pairs."""
    n = len(catalog)
    users = np.repeat(np.arange(len(catalog.train_sequences)), [len(q) for q in catalog.train_sequences])
    items = np.concatenate(catalog.train_sequences) if catalog.train_sequences else np.zeros(0, dtype=np.int64)
    bought = sp.csr_matrix((np.ones(len(items)), (users, items)), shape=(len(catalog.train_sequences), n))
    bought.data[:] = 1.0
    together = (bought.T @ bought).tocsr()  # (N, N): users who had both items in training
    adjacent = [np.stack([q[:-1], q[1:]], axis=1) for q in catalog.train_sequences if len(q) > 1]
    valid = catalog.valid_pairs
    unseen = np.asarray(together[valid[:, 0], valid[:, 1]]).ravel() == 0 if len(valid) else np.zeros(0, bool)
    train_adj = np.concatenate(adjacent) if adjacent else np.zeros((0, 2), dtype=np.int64)
    if len(train_adj) > max_train_pairs:
        train_adj = train_adj[np.sort(rng.choice(len(train_adj), max_train_pairs, replace=False))]
    return {"valid": valid, "valid_unseen": valid[unseen] if len(valid) else valid, "train_adjacent": train_adj}


def nearest_neighbours(catalog: ItemCatalog, fused: np.ndarray, rows: Sequence[int], k: int = 5) -> List[dict]:
    out = []
    for row in rows:
        sims = fused @ fused[row]
        sims[row] = -np.inf
        top = np.argsort(-sims, kind="stable")[:k]
        out.append({
            "item": str(catalog.tokens[row]), "name": catalog.display_name(row),
            "neighbours": [{"item": str(catalog.tokens[j]), "cosine": round(float(sims[j]), 3),
                            "name": catalog.display_name(j)} for j in top],
        })
    return out


def depth_stats(continue_probs: np.ndarray, expected: np.ndarray, used: np.ndarray, mask: np.ndarray,
                num_layers: int) -> dict:
    n_views = mask.sum(axis=1)
    by_views = {int(v): round(float(expected[n_views == v].mean()), 3) for v in np.unique(n_views)}
    hist = np.bincount(used.astype(np.int64), minlength=num_layers + 1)
    return {
        "max_depth": num_layers,
        "mean_expected_depth": round(float(expected.mean()), 3),
        "mean_used_depth": round(float(used.mean()), 3),
        "used_depth_histogram": {str(d): int(c) for d, c in enumerate(hist.tolist())},
        "mean_continue_prob_per_layer": [round(float(x), 3) for x in continue_probs.mean(axis=0).tolist()],
        "mean_expected_depth_by_views_present": by_views,
    }

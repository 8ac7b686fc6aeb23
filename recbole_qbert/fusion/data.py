"""Stage-1 training data: the views of every item as tensors, their masks, and training-sequence neighbours.

* ``features[m]`` ``(N, d_m)`` float32, ``mask`` ``(N, M)`` bool (True = view present);
* ``groups`` ``(N, M)`` long: items whose view ``m`` is the *same* vector share a group (same brand, same
  genre list), so the contrastive loss does not treat them as negatives and retrieval counts any of
  them as correct;
* the collaborative graph: items adjacent in some user's TRAINING sequence (CSR ``indptr``, ``indices``,
  ``weights`` = number of times adjacent). Nothing from validation or test targets enters it.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import scipy.sparse as sp
import torch

from recbole_qbert.features.catalog import ItemCatalog
from recbole_qbert.features.structural import cooccurrence
from recbole_qbert.features.table import FeatureTable


@dataclass
class FusionData:
    view_names: List[str]
    features: List[torch.Tensor]
    mask: torch.Tensor
    groups: torch.Tensor
    adjacency: sp.csr_matrix

    @property
    def num_items(self) -> int:
        return self.mask.shape[0]

    def restrict_adjacency(self, allowed: np.ndarray) -> sp.csr_matrix:
        """The collaborative graph without edges touching an item outside ``allowed`` (N,) bool."""
        keep = sp.diags(allowed.astype(np.float64))
        adj = (keep @ self.adjacency @ keep).tocsr()
        adj.eliminate_zeros()
        return adj


def content_groups(table: FeatureTable) -> np.ndarray:
    """``(N,)`` id per distinct present row (absent rows get unique negative ids)."""
    groups = -1 - np.arange(len(table), dtype=np.int64)
    rows = np.flatnonzero(table.present)
    if len(rows):
        _, inverse = np.unique(table.matrix[rows], axis=0, return_inverse=True)
        groups[rows] = inverse.ravel()
    return groups


def build_fusion_data(catalog: ItemCatalog, tables: Dict[str, FeatureTable]) -> FusionData:
    names = list(tables)
    features = [torch.from_numpy(np.ascontiguousarray(tables[n].matrix)) for n in names]
    mask = torch.from_numpy(np.stack([tables[n].present for n in names], axis=1))
    groups = torch.from_numpy(np.stack([content_groups(tables[n]) for n in names], axis=1))
    adjacency = cooccurrence(catalog.train_sequences, len(catalog), window=1)
    return FusionData(view_names=names, features=features, mask=mask, groups=groups, adjacency=adjacency)


def sample_neighbours(adjacency: sp.csr_matrix, rng: np.random.Generator,
                      items: Optional[np.ndarray] = None) -> np.ndarray:
    """One neighbour per item of ``items`` (default all), drawn in proportion to the edge weights;
    ``-1`` for an item without neighbours."""
    n = adjacency.shape[0]
    items = np.arange(n) if items is None else np.asarray(items)
    indptr, indices, weights = adjacency.indptr, adjacency.indices, adjacency.data
    out = np.full(len(items), -1, dtype=np.int64)
    start, end = indptr[items], indptr[items + 1]
    has = end > start
    if not has.any() or len(weights) == 0:
        return out
    cum = np.concatenate([[0.0], np.cumsum(weights)])
    lo, hi = cum[start[has]], cum[end[has]]
    target = lo + rng.random(int(has.sum())) * (hi - lo)
    pos = np.searchsorted(cum, target, side="right") - 1
    pos = np.clip(pos, start[has], end[has] - 1)
    out[has] = indices[pos]
    return out

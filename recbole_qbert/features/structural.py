"""Structural features, from TRAINING interactions and categorical item attributes only.

* ``graph``: an item co-occurrence graph over each user's training sequence (the sequence without its
  last two items, see :mod:`recbole_qbert.data.split`): items ``k <= window`` apart are linked,
  weighted ``1/k``. Its positive PMI matrix (context counts smoothed by ``^0.75``) is factorised by a
  truncated SVD (scipy, fixed start vector: deterministic); an item's vector is ``U_i * sqrt(S)``. Items
  without any training co-occurrence are marked not present.
* ``attributes``: the categorical fields the dataset has (categories, brand, genres, S3Rec's attribute
  ids ...) as field-prefixed tokens; tokens on fewer than ``min_count`` items are dropped; TF-IDF,
  L2-normalised rows, reduced by truncated SVD when the vocabulary is wider than ``dim``. Items with no
  kept token are marked not present.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from recbole_qbert.errors import QBertError
from recbole_qbert.features.catalog import ItemCatalog
from recbole_qbert.features.table import FeatureTable
from recbole_qbert.safe_io import sha256_json


def cooccurrence(sequences: Sequence[np.ndarray], n_items: int, window: int) -> sp.csr_matrix:
    """``(N, N)`` symmetric co-occurrence weights: ``1/k`` for each pair ``k <= window`` apart, no self-pairs."""
    if window < 1:
        raise QBertError(f"graph_window must be at least 1, got {window}")
    rows, cols, vals = [], [], []
    for seq in sequences:
        for k in range(1, min(window, len(seq) - 1) + 1):
            a, b = seq[:-k], seq[k:]
            keep = a != b
            rows.append(a[keep])
            cols.append(b[keep])
            vals.append(np.full(int(keep.sum()), 1.0 / k))
    if not rows:
        return sp.csr_matrix((n_items, n_items))
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    m = sp.coo_matrix((np.concatenate([v, v]), (np.concatenate([r, c]), np.concatenate([c, r]))),
                      shape=(n_items, n_items)).tocsr()
    m.sum_duplicates()
    return m


def ppmi(counts: sp.csr_matrix, alpha: float = 0.75) -> sp.csr_matrix:
    """Positive PMI of a co-occurrence matrix, with context counts raised to ``alpha``."""
    counts = counts.tocoo()
    total = counts.data.sum()
    if total == 0:
        return counts.tocsr()
    row_sum = np.asarray(counts.sum(axis=1)).ravel()
    ctx = np.asarray(counts.sum(axis=0)).ravel() ** alpha
    ctx /= ctx.sum()
    pmi = np.log(counts.data / total) - np.log(row_sum[counts.row] / total) - np.log(ctx[counts.col])
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep], (counts.row[keep], counts.col[keep])), shape=counts.shape)


def truncated_svd(m, k: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(U, S)`` of the top ``k`` singular triplets, largest first, signs fixed (deterministic)."""
    n = min(m.shape)
    if k >= n - 1:  # svds needs k < min(shape); small problems go dense
        u, s, _ = np.linalg.svd(m.toarray() if sp.issparse(m) else m, full_matrices=False)
        u, s = u[:, :k], s[:k]
    else:
        v0 = np.random.default_rng(seed).standard_normal(n)
        u, s, _ = svds(m.astype(np.float64), k=k, v0=v0, solver="arpack")
        order = np.argsort(-s, kind="stable")
        u, s = u[:, order], s[order]
    signs = np.sign(u[np.abs(u).argmax(axis=0), np.arange(u.shape[1])])
    signs[signs == 0] = 1.0
    return u * signs, s


def graph_features(catalog: ItemCatalog, *, window: int, dim: int, seed: int) -> Tuple[Optional[FeatureTable], List[str]]:
    counts = cooccurrence(catalog.train_sequences, len(catalog), window)
    weights = ppmi(counts)
    present = np.asarray(weights.getnnz(axis=1)) > 0
    if present.sum() < 3:
        return None, [f"{catalog.name}: fewer than 3 items co-occur in training sequences; no graph features"]
    k = max(1, min(dim, int(present.sum()) - 2))
    u, s = truncated_svd(weights, k, seed)
    matrix = np.zeros((len(catalog), dim), dtype=np.float32)
    matrix[:, :k] = (u * np.sqrt(s)).astype(np.float32)
    notes = [] if present.all() else [f"{int((~present).sum())} of {len(catalog)} items have no training "
                                      "co-occurrence (graph view marked not present)"]
    meta = {
        "modality": "structural", "view": "graph", "encoder": "PPMI + truncated SVD of training co-occurrence",
        "dim": dim, "rank": k, "config": {"graph_window": window, "context_alpha": 0.75, "seed": seed},
        "n_present": int(present.sum()), "n_edges": int(counts.nnz // 2),
        "training_interactions": int(sum(len(q) for q in catalog.train_sequences)),
        "input_hash": sha256_json([catalog.files_hash, "graph", window, dim, seed])[:16],
    }
    return FeatureTable(catalog.tokens, matrix, present, meta, source=f"{catalog.name} graph"), notes


def attribute_tokens(catalog: ItemCatalog, fields: Sequence[str]) -> List[List[str]]:
    per_item: List[List[str]] = [[] for _ in range(len(catalog))]
    for f in fields:
        seq = catalog.field_types.get(f) == "token_seq"
        for row, value in enumerate(catalog.fields[f]):
            values = value.split() if seq else ([value.strip()] if value.strip() else [])
            per_item[row].extend(f"{f}={v}" for v in dict.fromkeys(values))
    return per_item


def attribute_features(catalog: ItemCatalog, *, fields: Sequence[str], dim: int, min_count: int, seed: int
                       ) -> Tuple[Optional[FeatureTable], List[str]]:
    used = [f for f in fields if f in catalog.fields and any(catalog.fields[f])]
    if not used:
        return None, [f"{catalog.name}: no categorical attribute field ({', '.join(fields)}); "
                      "no attribute features"]
    per_item = attribute_tokens(catalog, used)
    df: dict = {}
    for toks in per_item:
        for t in toks:
            df[t] = df.get(t, 0) + 1
    vocab = sorted(t for t, c in df.items() if c >= min_count)
    if not vocab:
        return None, [f"{catalog.name}: no attribute value is shared by {min_count} items; no attribute features"]
    col = {t: j for j, t in enumerate(vocab)}
    rows, cols = [], []
    for i, toks in enumerate(per_item):
        for t in toks:
            if t in col:
                rows.append(i)
                cols.append(col[t])
    n = len(catalog)
    idf = np.log(n / np.array([df[t] for t in vocab], dtype=np.float64)) + 1.0
    m = sp.csr_matrix((idf[cols], (rows, cols)), shape=(n, len(vocab)))
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    present = norms > 0
    m = sp.diags(np.where(present, 1.0 / np.maximum(norms, 1e-12), 0.0)) @ m
    if len(vocab) <= dim:
        matrix = np.zeros((n, dim), dtype=np.float32)
        matrix[:, :len(vocab)] = m.toarray()
        method, rank = "TF-IDF (vocabulary narrower than dim: kept as is)", len(vocab)
    else:
        k = min(dim, n - 2)
        u, s = truncated_svd(m, k, seed)
        matrix = np.zeros((n, dim), dtype=np.float32)
        matrix[:, :k] = (u * s).astype(np.float32)
        method, rank = "TF-IDF + truncated SVD", k
    notes = [] if present.all() else [f"{int((~present).sum())} of {n} items have no kept attribute "
                                      "(attribute view marked not present)"]
    meta = {
        "modality": "structural", "view": "attributes", "encoder": method, "dim": dim, "rank": rank,
        "fields": used, "vocabulary": len(vocab), "config": {"attribute_min_count": min_count, "seed": seed},
        "n_present": int(present.sum()),
        "input_hash": sha256_json([catalog.files_hash, "attributes", used, dim, min_count, seed])[:16],
    }
    return FeatureTable(catalog.tokens, matrix, present, meta, source=f"{catalog.name} attributes"), notes

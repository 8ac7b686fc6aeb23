"""Structural features: co-occurrence from training sequences only (validation and test targets never
enter), PPMI + SVD determinism, categorical attributes with masks."""
import numpy as np
import pytest

from fixtures.stage1 import write_shop
from recbole_qbert.errors import QBertError
from recbole_qbert.features.catalog import load_catalog
from recbole_qbert.features.structural import (attribute_features, cooccurrence, graph_features, ppmi,
                                               truncated_svd)


def test_cooccurrence_window_weights_and_no_self_pairs():
    m = cooccurrence([np.array([0, 1, 2, 2])], 4, window=2).toarray()
    assert m[0, 1] == 1.0 and m[0, 2] == 0.5 and m[1, 2] == 1.0 + 0.5 and m[2, 2] == 0.0
    np.testing.assert_array_equal(m, m.T)
    assert not m[3].any()
    with pytest.raises(QBertError, match="graph_window must be at least 1"):
        cooccurrence([], 3, window=0)


def test_graph_uses_training_interactions_only(tmp_path):
    write_shop(tmp_path, with_images=False)
    cat = load_catalog("shop", tmp_path)
    table, notes = graph_features(cat, window=3, dim=4, seed=0)
    # A4 and A5 are only ever validation/test targets; A6 is alone in u3's training sequence
    assert table.present.tolist() == [True, True, True, False, False, False]
    assert "3 of 6 items have no training co-occurrence" in notes[0]
    assert table.meta["training_interactions"] == 7 and table.meta["view"] == "graph"


def test_svd_is_deterministic_and_sign_fixed():
    rng = np.random.default_rng(1)
    counts = cooccurrence([rng.integers(0, 60, size=12) for _ in range(80)], 60, window=3)
    weights = ppmi(counts)
    assert (weights.data > 0).all()
    u1, s1 = truncated_svd(weights, 8, seed=3)
    u2, s2 = truncated_svd(weights, 8, seed=3)
    np.testing.assert_array_equal(u1, u2)
    assert (np.diff(s1) <= 1e-9).all(), "largest first"
    assert (u1[np.abs(u1).argmax(axis=0), np.arange(8)] > 0).all()
    dense_u, _ = truncated_svd(weights.toarray(), 59, seed=0)  # k >= n - 1: the dense path
    np.testing.assert_allclose(np.abs(dense_u[:, :8].T @ u1).diagonal(), 1.0, atol=1e-6)


def test_attributes_tfidf_masks_items_without_any(tmp_path):
    write_shop(tmp_path, with_images=False)
    cat = load_catalog("shop", tmp_path)
    table, notes = attribute_features(cat, fields=["categories", "brand", "class"], dim=16, min_count=2, seed=0)
    # kept tokens (>= 2 items): categories Skin_Care, Makeup, Eyes; brand Petal, Glow
    assert table.meta["vocabulary"] == 5 and table.meta["fields"] == ["categories", "brand"]
    assert table.present.tolist() == [True, True, True, True, False, True]
    norms = np.linalg.norm(table.matrix, axis=1)
    np.testing.assert_allclose(norms[table.present], 1.0, rtol=1e-6)
    assert table.matrix[3] @ table.matrix[5] > table.matrix[3] @ table.matrix[0], "shared Makeup Eyes"
    reduced, _ = attribute_features(cat, fields=["categories", "brand"], dim=2, min_count=1, seed=0)
    assert reduced.matrix.shape == (6, 2) and reduced.meta["encoder"] == "TF-IDF + truncated SVD"
    none, notes = attribute_features(cat, fields=["genres"], dim=4, min_count=1, seed=0)
    assert none is None and "no categorical attribute field" in notes[0]

"""Real-data smoke run of stage 1 on the Scientific multimodal subset (../shared/data): import the
precomputed CLIP features, build the training co-occurrence graph, fuse for a few epochs, and check that
co-purchase pairs unseen in training end up closer than random pairs."""
import numpy as np
import pytest
import torch

from recbole_qbert.features.image import import_unisrec
from recbole_qbert.features.catalog import load_catalog
from recbole_qbert.features.structural import graph_features
from recbole_qbert.fusion.train import train_fusion
from recbole_qbert.stage_config import load_stage_config

from dataset_prep.fuse import DEFAULTS
from fixtures.scientific_clip import SCIENTIFIC, needs_scientific

pytestmark = needs_scientific


@pytest.fixture(scope="module")
def scientific(scientific_data):
    return load_catalog("amazon-scientific", scientific_data)


def test_scientific_import_and_fusion_smoke(scientific):
    cat = scientific
    assert len(cat) == 1585 and sum(len(s) for s in cat.train_sequences) == 19712 - 2 * 2928
    tables, notes = import_unisrec(cat, SCIENTIFIC)
    assert sorted(tables) == ["image", "text_clip"] and notes == []
    raw = np.fromfile(SCIENTIFIC / "Scientific.feat3CLS", dtype=np.float32).reshape(-1, 512)
    first = (SCIENTIFIC / "Scientific.item2index").read_text().splitlines()[0].split("\t")
    np.testing.assert_array_equal(tables["image"].matrix[cat.index[first[0]]], raw[int(first[1])])
    assert tables["image"].present.all() and tables["image"].meta["dim"] == 512
    graph, _ = graph_features(cat, window=3, dim=32, seed=0)
    tables["graph"] = graph

    torch.set_num_threads(1)
    cfg = load_stage_config(DEFAULTS, overrides={
        "shared_dim": 64, "num_layers": 2, "num_heads": 2, "ffn_dim": 128, "max_epochs": 6, "batch_size": 256,
        "refit_id_epochs": 1, "report_max_train_pairs": 2000, "threads": 1})
    fused, report = train_fusion(cat, tables, cfg, log=lambda _: None)
    assert fused.matrix.shape == (1585, 64) and np.isfinite(fused.matrix).all()
    curve = report["fit"]["loss_curve"]
    assert curve[-1]["train_loss"] < curve[0]["train_loss"]
    acc = report["alignment_accuracy"]["all_items_final_model"]
    assert min(acc.values()) > 20 * max(report["alignment_accuracy"]["chance"].values())
    assert report["auc"]["fused"]["valid"]["auc"] > 0.6 and report["auc"]["fused"]["valid"]["pairs"] > 2800
    assert abs(report["auc"]["random_vectors"]["valid"]["auc"] - 0.5) < 0.05

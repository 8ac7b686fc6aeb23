"""Stage-1 training: the loss falls on a separable problem, runs are deterministic under a seed, masks
and the fixed-depth switch hold end to end, configs and feature folders are checked, the CLI writes
nothing on bad input."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures.errors import one_line_error
from fixtures.stage1 import clustered_tables, random_tables, write_shop
from recbole_qbert.errors import QBertError
from recbole_qbert.features.catalog import ItemCatalog
from recbole_qbert.features.table import FeatureTable
from recbole_qbert.fusion.data import build_fusion_data, sample_neighbours
from recbole_qbert.fusion.losses import info_nce
from recbole_qbert.fusion.train import hide_views, train_fusion
from recbole_qbert.stage_config import load_stage_config, parse_set_options

from dataset_prep.fuse import DEFAULTS, main as fuse_main
from dataset_prep.extract_features import main as extract_main

SMALL = {"shared_dim": 16, "num_layers": 2, "num_heads": 2, "ffn_dim": 32, "gate_hidden": 8, "batch_size": 16,
         "max_epochs": 12, "min_epochs": 2, "patience": 3, "holdout_fraction": 0.25, "refit_id_epochs": 2,
         "report_neighbour_items": 2, "threads": 1, "learning_rate": 0.005}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def toy_catalog(tokens, sequences, tmp_path=Path(".")):
    seqs = [np.asarray(s, dtype=np.int64) for s in sequences]
    pairs = np.array([[s[-1], s[0]] for s in seqs], dtype=np.int64)
    return ItemCatalog(name="toy", folder=tmp_path, tokens=np.array(tokens), fields={}, field_types={},
                       train_sequences=seqs, valid_pairs=pairs, files_hash="toy")


def cfg(**extra):
    return load_stage_config(DEFAULTS, overrides={**SMALL, **extra})


def quiet(_):
    pass


def test_loss_falls_and_views_align_on_a_separable_problem():
    tokens, tables, seqs = clustered_tables()
    fused, report = train_fusion(toy_catalog(tokens, seqs), tables, cfg(), log=quiet)
    curve = report["fit"]["loss_curve"]
    assert curve[-1]["train_loss"] < 0.7 * curve[0]["train_loss"]
    assert curve[-1]["heldout_loss"] < curve[0]["heldout_loss"]
    acc = report["alignment_accuracy"]["all_items_final_model"]
    assert min(acc.values()) > 4 * max(report["alignment_accuracy"]["chance"].values())
    assert report["auc"]["fused"]["train_adjacent"]["auc"] > 0.8, "items of one cluster end up close"
    assert fused.matrix.shape == (32, 16) and fused.present.all()
    np.testing.assert_allclose(np.linalg.norm(fused.matrix, axis=1), 1.0, rtol=1e-5)
    gate = report["gate"]
    assert 0 <= gate["mean_expected_depth"] <= 2 and sum(gate["used_depth_histogram"].values()) == 32
    assert report["held_out_items"] == 8 and report["refit"]["mode"] == "ids"


def test_deterministic_under_seed():
    tokens, tables, seqs = clustered_tables(n_clusters=2, per_cluster=8)
    cat = toy_catalog(tokens, seqs)
    a, ra = train_fusion(cat, tables, cfg(max_epochs=3), log=quiet)
    b, rb = train_fusion(cat, tables, cfg(max_epochs=3), log=quiet)
    np.testing.assert_array_equal(a.matrix, b.matrix)
    assert ra["fit"]["loss_curve"][-1]["train_loss"] == rb["fit"]["loss_curve"][-1]["train_loss"]
    assert a.meta["input_hash"] == b.meta["input_hash"]
    c, _ = train_fusion(cat, tables, cfg(max_epochs=3, seed=7), log=quiet)
    assert not np.allclose(a.matrix, c.matrix)


def test_items_without_any_view_fixed_depth_and_full_refit():
    tokens = [f"i{k}" for k in range(20)]
    tables = random_tables(tokens, {"text": 6, "image": 5}, absent={"text": [0, 1, 2], "image": [0, 1, 3]})
    seqs = [np.arange(k, k + 4) % 20 for k in range(1, 20)]  # item 0 has neighbours, no views
    fused, report = train_fusion(toy_catalog(tokens, seqs), tables,
                                 cfg(fixed_depth=1, max_epochs=2, refit="full", holdout_fraction=0.2), log=quiet)
    assert np.isfinite(fused.matrix).all() and report["items_without_any_view"] == 2
    assert report["gate"]["mean_expected_depth"] == 1.0 and report["gate"]["used_depth_histogram"] == {
        "0": 0, "1": 20, "2": 0}
    assert report["refit"]["mode"] == "full" and report["refit"]["epochs"] == report["fit"]["best_epoch"]
    assert report["views"]["text"]["present"] == 17


def test_info_nce_ignores_identical_contents_as_negatives():
    a = torch.nn.functional.normalize(torch.randn(5, 3, generator=torch.Generator().manual_seed(0)), dim=1)
    b = torch.nn.functional.normalize(torch.randn(5, 3, generator=torch.Generator().manual_seed(1)), dim=1)
    groups = [0, 0, 1, 2, 1]
    sim = (a @ b.t() / 0.1).tolist()

    def term(i, score):
        """-log softmax of the pair (i, i) among i's own pair and the rows of other groups."""
        kept = [j for j in range(5) if j == i or groups[j] != groups[i]]
        return math.log(sum(math.exp(score(i, j)) for j in kept)) - score(i, i)

    by_row = sum(term(i, lambda i, j: sim[i][j]) for i in range(5)) / 5
    by_column = sum(term(i, lambda i, j: sim[j][i]) for i in range(5)) / 5
    grouped = info_nce(a, b, 0.1, groups=torch.tensor(groups))
    assert grouped.item() == pytest.approx(0.5 * (by_row + by_column), rel=1e-5)
    assert info_nce(a, b, 0.1, groups=torch.arange(5)).item() == pytest.approx(info_nce(a, b, 0.1).item())


def test_hide_views_keeps_one_view_and_neighbour_sampling():
    g = torch.Generator().manual_seed(0)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]], dtype=torch.bool)
    for _ in range(20):
        shown = hide_views(mask, 0.9, g)
        assert (shown <= mask).all() and shown[:2].any(dim=1).all() and not shown[2].any()
    tokens, tables, seqs = clustered_tables(n_clusters=2, per_cluster=4)
    data = build_fusion_data(toy_catalog(tokens, seqs), tables)
    nb = sample_neighbours(data.adjacency, np.random.default_rng(0))
    assert (nb >= 0).all() and (nb // 4 == np.arange(8) // 4).all(), "neighbours come from training sequences"
    held = np.ones(8, dtype=bool)
    held[0] = False
    assert sample_neighbours(data.restrict_adjacency(held), np.random.default_rng(0))[0] == -1


def test_stage_config_checks_keys_and_types(tmp_path):
    (tmp_path / "mine.yaml").write_text("shared_dimm: 64\n")
    with pytest.raises(QBertError, match="mine.yaml: unknown config key 'shared_dimm' \\(did you mean 'shared_dim'\\?\\)"):
        load_stage_config(DEFAULTS, [tmp_path / "mine.yaml"])
    (tmp_path / "mine.yaml").write_text("num_layers: four\n")
    with pytest.raises(QBertError, match="mine.yaml: num_layers='four': expected int >= 1"):
        load_stage_config(DEFAULTS, [tmp_path / "mine.yaml"])
    (tmp_path / "mine.yaml").write_text("dropout: 1.5\n")
    with pytest.raises(QBertError, match=r"mine.yaml: dropout=1.5: expected float >= 0 and < 1"):
        load_stage_config(DEFAULTS, [tmp_path / "mine.yaml"])
    with pytest.raises(QBertError, match="config: shared_dim=64 is not divisible by num_heads=3"):
        load_stage_config(DEFAULTS, overrides={"shared_dim": 64, "num_heads": 3})
    assert load_stage_config(DEFAULTS, overrides={"learning_rate": 1})["learning_rate"] == 1.0
    with pytest.raises(QBertError, match="fixed_depth must be in 0..num_layers"):
        train_fusion(toy_catalog(["a", "b"], [[0, 1]]), random_tables(["a", "b"], {"t": 3}), cfg(fixed_depth=5))
    with pytest.raises(QBertError, match=r"refit='yes': expected str \(one of ids, full, none\)"):
        cfg(refit="yes")


def test_cli_end_to_end_and_bad_inputs(tmp_path, capsys):
    write_shop(tmp_path / "atomic", with_images=False)
    common = ["--dataset", "shop", "--data-path", str(tmp_path / "atomic")]
    feats, out = tmp_path / "features", tmp_path / "fused"
    assert extract_main(["structural", *common, "--out", str(feats), "--set", "graph_dim=4",
                         "--set", "attribute_dim=4"]) == 0
    assert sorted(p.name for p in (feats / "shop").iterdir()) == ["attributes.npz", "graph.npz"]
    args = ["--dataset", "shop", "--data-path", str(tmp_path / "atomic"), "--features", str(feats), "--out", str(out),
            "--quiet", "--set", "shared_dim=8", "--set", "num_heads=2", "--set", "ffn_dim=8", "--set", "max_epochs=2",
            "--set", "batch_size=4", "--set", "threads=1"]
    assert fuse_main(args + ["--report", str(tmp_path / "r" / "shop.json")]) == 0
    fused = FeatureTable.load(out / "shop" / "fused.npz")
    assert fused.tokens.tolist() == ["A1", "A2", "A3", "A4", "A5", "A6"] and np.isfinite(fused.matrix).all()
    report = json.loads((tmp_path / "r" / "shop.json").read_text())
    assert report["items_without_any_view"] == 1 and "--set threads=1 " in report["commands"]["fusion"]
    assert set(report["extraction"]) == {"attributes", "graph"} and report["auc"]["fused"]["valid"]["pairs"] == 3
    assert fused.meta["inputs"]["graph"]["content_hash"] == FeatureTable.load(feats / "shop" / "graph.npz").content_hash()
    assert fuse_main(args + ["--set", "views=[graph]", "--out", str(tmp_path / "graph_only")]) == 0
    assert list(FeatureTable.load(tmp_path / "graph_only" / "shop" / "fused.npz").meta["inputs"]) == ["graph"]
    capsys.readouterr()

    def fails(argv, message):
        before = sorted(p.name for p in (out / "shop").iterdir())
        assert fuse_main(argv) == 2
        one_line_error(capsys, message)
        assert sorted(p.name for p in (out / "shop").iterdir()) == before, "nothing half-written"

    fails(args + ["--set", "num_layer=2"], "command line: unknown config key 'num_layer'")
    fails(args + ["--set", "views=['text']"], "text.npz: feature file not found")
    # a table of another item set, then a stale one (the dataset changed after extraction)
    other = random_tables(["A1", "A2", "Z9"], {"image": 3})["image"]
    other.save(feats / "shop" / "image.npz")
    fails(args, "image.npz: has 1 items the dataset does not (e.g. Z9)")
    (feats / "shop" / "image.npz").unlink()
    inter = tmp_path / "atomic" / "shop" / "shop.inter"
    inter.write_text(inter.read_text() + "u9\tA1\t0\n")
    fails(args, "made from another version of shop's atomic files (stale)")
    fails(args[:4] + ["--features", str(tmp_path / "none")], "feature folder not found")


def test_cli_refuses_bad_outputs_and_devices_before_any_work(tmp_path, capsys):
    write_shop(tmp_path / "atomic", with_images=False)
    feats = tmp_path / "features"
    assert extract_main(["structural", "--dataset", "shop", "--data-path", str(tmp_path / "atomic"), "--out",
                         str(feats), "--set", "graph_dim=4", "--set", "attribute_dim=4"]) == 0
    (tmp_path / "a_file").write_text("")
    (tmp_path / "a_folder").mkdir()
    args = ["--dataset", "shop", "--data-path", str(tmp_path / "atomic"), "--features", str(feats), "--quiet",
            "--set", "shared_dim=8", "--set", "num_heads=2", "--set", "max_epochs=1", "--set", "batch_size=4"]
    capsys.readouterr()

    def fails(argv, message):
        before = sorted(p.name for p in tmp_path.iterdir())
        assert fuse_main(argv) == 2
        one_line_error(capsys, message)
        assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing half-written"
        assert not list((tmp_path / "a_folder").iterdir())

    fails(args + ["--out", str(tmp_path / "a_file")], "a_file: is a file, cannot write")
    fails(args + ["--out", str(tmp_path / "fused"), "--report", str(tmp_path / "a_folder")],
          "a_folder: is a folder, cannot write a file there")
    fails(args + ["--out", str(tmp_path / "fused"), "--set", "device=bogus"],
          "config: device='bogus': expected cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        fails(args + ["--out", str(tmp_path / "fused"), "--set", "device=cuda"],
              "config: device='cuda': torch sees no CUDA GPU on this machine; use cpu")


def test_refit_none_is_reachable_from_the_command_line():
    assert load_stage_config(DEFAULTS, overrides=parse_set_options(["refit=none"]))["refit"] == "none"
    assert load_stage_config(DEFAULTS, overrides=parse_set_options(["fixed_depth=none"]))["fixed_depth"] is None


def test_device_must_be_one_torch_sees(monkeypatch):
    from recbole_qbert.stage_config import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_device("cuda", "config")
    check_device("cuda:1", "config")
    with pytest.raises(QBertError, match=r"^config: device='cuda:2': torch sees 2 CUDA GPU\(s\) \(cuda:0 to cuda:1\)$"):
        check_device("cuda:2", "config")

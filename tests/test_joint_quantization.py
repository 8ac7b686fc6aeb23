"""Joint quantization of two datasets (one shared codebook) and a cross-domain pretrain -> fine-tune on it."""
import json

import numpy as np
import pytest
import torch

from dataset_prep import quantize
from fixtures.errors import one_line_error
from fixtures.sid_data import small_settings, write_synth_dataset
from fixtures.tiny import tiny_overrides
from recbole_qbert.errors import QBertError
from recbole_qbert.features import FeatureTable
from recbole_qbert.quantize.joint import run_train_joint
from recbole_qbert.runner import run
from recbole_qbert.semantic_ids import read_semantic_ids
from recbole_qbert.trainer import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SETTINGS = ["--set", "n_levels=2", "--set", "codebook_size=8", "--set", "code_dim=8", "--set", "hidden_dims=[32]",
            "--set", "epochs=3"]


@pytest.fixture(scope="module")
def two_domains(tmp_path_factory):
    root = tmp_path_factory.mktemp("domains")
    a_tokens, _ = write_synth_dataset(root, "dom_a", n_items=120, seed=0)
    b_tokens, _ = write_synth_dataset(root, "dom_b", n_items=90, seed=1)
    return root, {"dom_a": a_tokens, "dom_b": b_tokens}


def test_joint_files_share_one_vocabulary_and_each_covers_its_own_items(two_domains, tmp_path, capsys):
    root, tokens = two_domains
    sid = tmp_path / "joint" / "{dataset}.sid"
    assert quantize.main(["train", "--dataset", "dom_a", "--dataset", "dom_b", "--data-path", str(root),
                          "--features", str(root / "{dataset}.features.npz"), "--set", f"sid_file={sid}",
                          "--quiet", *SETTINGS]) == 0
    assert "codes used by every dataset" in capsys.readouterr().out
    a = read_semantic_ids(tmp_path / "joint" / "dom_a.sid", dataset="dom_a", tokens=tokens["dom_a"])
    b = read_semantic_ids(tmp_path / "joint" / "dom_b.sid", dataset="dom_b", tokens=tokens["dom_b"])
    assert a.codebook_sizes == b.codebook_sizes and a.codebook_sizes[:2] == [8, 8]
    assert a.meta["kind"] == b.meta["kind"] == "joint"
    assert a.meta["quantizer"]["sha256"] == b.meta["quantizer"]["sha256"], "one quantizer for both"
    report = json.loads((tmp_path / "joint" / "joint.report.json").read_text())
    assert report["datasets"] == ["dom_a", "dom_b"]
    assert all(r["collisions"]["after"]["collision_rate"] == 0 for r in report["per_dataset"].values())
    level1 = report["shared_codes"][0]
    assert 0 < level1["shared_by_all"] <= min(level1["used"].values())


def test_joint_refuses_ambiguous_output_and_mixed_dimensions(two_domains, tmp_path):
    root, tokens = two_domains
    features = str(root / "{dataset}.features.npz")
    with pytest.raises(QBertError, match="must contain '\\{dataset\\}'"):
        run_train_joint(["dom_a", "dom_b"], small_settings(features, tmp_path / "one.sid"), data_path=str(root),
                        log=lambda m: None)
    FeatureTable.load(root / "dom_a.features.npz").save(root / "dom_a.wide.npz")
    FeatureTable(tokens["dom_b"], np.ones((90, 5), np.float32), np.ones(90, bool)).save(root / "dom_b.wide.npz")
    with pytest.raises(QBertError, match="features of one dimension"):
        run_train_joint(["dom_a", "dom_b"], small_settings(str(root / "{dataset}.wide.npz"), tmp_path / "{dataset}.sid"),
                        data_path=str(root), log=lambda m: None)
    assert not list(tmp_path.glob("*.sid"))


def test_joint_cli_refuses_a_folder_in_place_of_an_output_before_training(two_domains, tmp_path, capsys):
    root, _ = two_domains
    (tmp_path / "dom_b.rqvae.safetensors").mkdir()
    assert quantize.main(["train", "--dataset", "dom_a", "--dataset", "dom_b", "--data-path", str(root),
                          "--features", str(root / "{dataset}.features.npz"), "--set",
                          f"sid_file={tmp_path / '{dataset}.sid'}", "--quiet", *SETTINGS]) == 2
    one_line_error(capsys, "dom_b.rqvae.safetensors: is a folder, cannot write a file there")
    assert [p.name for p in tmp_path.iterdir()] == ["dom_b.rqvae.safetensors"], "nothing written for dom_a"


def test_cross_domain_pretrain_then_finetune(two_domains, tmp_path, in_tmp):
    """Pretrain QBERT4Rec on one domain, fine-tune on the other: the shared vocabulary loads as is."""
    root, _ = two_domains
    sid = tmp_path / "joint" / "{dataset}.sid"
    run_train_joint(["dom_a", "dom_b"], small_settings(str(root / "{dataset}.features.npz"), sid),
                    data_path=str(root), log=lambda m: None)

    def qbert(dataset, run_dir, **extra):
        return run("QBERT4Rec", dataset, run_dir=run_dir, overrides=tiny_overrides(
            root, sid_file=str(sid).replace("{dataset}", dataset), epochs=1, **extra))

    qbert("dom_a", tmp_path / "pre")
    record = qbert("dom_b", tmp_path / "ft", train_stage="finetune", freeze=["code_embeddings"],
                   pretrained_checkpoint=str(tmp_path / "pre" / "best.pth"))
    pre = load_checkpoint(tmp_path / "pre" / "best.pth")["state_dict"]
    ft = load_checkpoint(tmp_path / "ft" / "best.pth")["state_dict"]
    assert torch.equal(pre["code_embeddings.0.weight"], ft["code_embeddings.0.weight"])
    assert record["dataset"] == "dom_b" and "ndcg@10" in record["test"]

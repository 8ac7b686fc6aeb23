"""Config layering, protocol defaults and one-line errors for bad configs."""
import sys

import pytest

from recbole_qbert.config import build_config, config_hash, load_yaml, parse_overrides, parse_value
from recbole_qbert.errors import QBertError
from recbole_qbert.model_registry import resolve_model


def sasrec_config(*files, **overrides):
    return build_config(resolve_model("SASRec"), "ml-100k", [str(f) for f in files], overrides)


def test_protocol_defaults_apply_to_builtin_models():
    config = sasrec_config()
    assert config["eval_args"]["split"] == {"LS": "valid_and_test"}
    assert config["eval_args"]["order"] == "TO"
    assert config["eval_args"]["mode"] == {"valid": "full", "test": "full"}
    assert [m.lower() for m in config["metrics"]] == ["recall", "ndcg", "mrr"]
    assert config["topk"] == [5, 10, 20]
    assert config["valid_metric"] == "NDCG@10"
    assert config["MAX_ITEM_LIST_LENGTH"] == 50
    assert config["train_neg_sample_args"] is None or config["train_neg_sample_args"]["distribution"] == "none"


def test_pair_learning_models_keep_recboles_negative_sampling():
    """The protocol's "no negative sampling" (CE over the catalogue) is for sequential models; general and
    knowledge-aware models learn from (positive, sampled negative) pairs, RecBole's default."""
    for name in ("BPR", "CKE"):
        config = build_config(resolve_model(name), "ml-100k")
        assert config["train_neg_sample_args"]["distribution"] == "uniform"
        assert config["train_neg_sample_args"]["sample_num"] == 1
    off = build_config(resolve_model("BPR"), "ml-100k", overrides={"train_neg_sample_args": None})
    assert off["train_neg_sample_args"]["distribution"] == "none"  # a user's choice still wins


def test_knowledge_aware_models_load_the_graph_files_beside_the_dataset_columns():
    config = build_config(resolve_model("CKE"), "ml-100k")
    assert config["load_col"]["kg"] == ["head_id", "relation_id", "tail_id"]
    assert config["load_col"]["link"] == ["item_id", "entity_id"]
    assert config["load_col"]["inter"] == ["user_id", "item_id", "timestamp"]  # properties/dataset/ml-100k.yaml
    assert "kg" not in sasrec_config()["load_col"]


def test_context_aware_models_are_refused_in_one_line():
    with pytest.raises(QBertError, match=r"^FM is a context-aware model: .*labelled rows[^\n]*$"):
        build_config(resolve_model("FM"), "ml-100k")


def test_layering_user_file_then_overrides(tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text("learning_rate: 0.01\nepochs: 7\n")
    config = sasrec_config(user, epochs=3)
    assert config["learning_rate"] == 0.01
    assert config["epochs"] == 3


def test_command_line_of_the_process_is_not_read(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["prog", "--epochs=999"])
    assert sasrec_config()["epochs"] != 999


@pytest.mark.parametrize("text, message", [
    ("learning_rat: 0.01\n", "unknown config key 'learning_rat' (did you mean 'learning_rate'?)"),
    ("epochs: [1\n", "malformed YAML"),
    ("- a\n- b\n", "expected a mapping"),
])
def test_bad_config_file_names_file_and_problem(tmp_path, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(QBertError) as err:
        sasrec_config(bad)
    assert str(bad) in str(err.value) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(QBertError, match="config file not found"):
        load_yaml(tmp_path / "absent.yaml")


def test_unknown_override_key():
    with pytest.raises(QBertError, match="command line: unknown config key 'epoch'"):
        sasrec_config(epoch=3)


def test_a_key_only_other_models_read_is_an_error_not_a_silent_no_op():
    with pytest.raises(QBertError, match=r"command line: config key 'seen_item_bias' is not read by SASRec "
                                         r"\(only by QBERT4Rec, QSASRec\)"):
        sasrec_config(seen_item_bias=True)
    with pytest.raises(QBertError, match="'input_mask_strategies' is not read by QBERT4Rec"):
        build_config(resolve_model("QBERT4Rec"), "ml-100k", [], {"input_mask_strategies": {"random": 1.0}},
                     own_model=True)
    qbert = build_config(resolve_model("QBERT4Rec"), "ml-100k", [], {"transformer_norm": "pre"}, own_model=True)
    assert qbert["transformer_norm"] == "pre"


def test_pickle_options_are_refused():
    with pytest.raises(QBertError, match="pickle"):
        sasrec_config(save_dataset=True)


def test_parse_values_like_recbole_without_eval():
    assert parse_overrides(["--epochs=5", "--learning_rate=1e-3", "--topk=[5, 10]", "--x=True", "--y=CE",
                            "--z=~"]) == {"epochs": 5, "learning_rate": 0.001, "topk": [5, 10], "x": True,
                                          "y": "CE", "z": None}
    assert parse_value("__import__('os')") == "__import__('os')"  # never evaluated
    with pytest.raises(QBertError, match="expected --key=value"):
        parse_overrides(["epochs"])


def test_config_hash_ignores_seed_and_budget_but_not_hyperparameters():
    base = config_hash(sasrec_config())
    assert config_hash(sasrec_config(seed=1, epochs=3, train_budget_s=5)) == base
    assert config_hash(sasrec_config(hidden_size=16)) != base


def test_keys_added_later_leave_the_hash_alone_while_switched_off():
    """Records made before a key existed keep their identity while the key is at its off value."""
    def qsasrec(**overrides):
        return build_config(resolve_model("QSASRec"), "ml-100k", [], overrides)

    base = config_hash(qsasrec())
    assert config_hash(qsasrec(train_negatives=0, pretrained_parts=["trm_encoder"])) == base
    assert config_hash(qsasrec(train_negatives=64)) != base
    assert config_hash(qsasrec(seen_item_bias=False)) == base
    assert config_hash(qsasrec(seen_item_bias=True)) != base
    assert config_hash(qsasrec(score_temperature=None)) == base
    assert config_hash(qsasrec(score_temperature=0.1)) != base
    assert config_hash(qsasrec(future_targets=1, future_target_decay=0.9)) == base
    assert config_hash(qsasrec(attention_recency_bias=False)) == base
    assert config_hash(qsasrec(attention_recency_bias=True)) != base
    assert config_hash(qsasrec(future_targets=3)) != config_hash(qsasrec(future_targets=3, future_target_decay=0.9))
    start = {"pretrained_checkpoint": "source.pth"}
    assert config_hash(qsasrec(**start)) != config_hash(qsasrec(pretrained_parts=["trm_encoder"], **start))


def test_qbert4rec_post_norm_hashes_as_before_the_key_existed():
    def qbert4rec(**overrides):
        return build_config(resolve_model("QBERT4Rec"), "ml-100k", [], overrides, own_model=True)

    before = qbert4rec()
    del before.final_config_dict["transformer_norm"]
    assert config_hash(qbert4rec()) == config_hash(before)
    assert config_hash(qbert4rec(transformer_norm="pre")) != config_hash(before)
    qsasrec, without = (build_config(resolve_model("QSASRec"), "ml-100k", [], {}, own_model=True) for _ in "ab")
    del without.final_config_dict["transformer_norm"]  # QSASRec's records were made with the key
    assert config_hash(qsasrec) != config_hash(without)


def test_unknown_model_suggests_a_name():
    with pytest.raises(QBertError, match="unknown model 'SASrec'; did you mean SASRec"):
        resolve_model("SASrec")

"""Safe checkpoints, resume, budgets, and metrics from RecBole's evaluator on real runs."""
import json
import time

import numpy as np
import pytest
import torch

from recbole_qbert.errors import QBertError
from recbole_qbert.runner import run
from recbole_qbert.trainer import CHECKPOINT_FORMAT, load_checkpoint, make_trainer, save_checkpoint
from fixtures.ranking import best_model, full_ranking_metrics
from fixtures.tiny import tiny_overrides, write_tiny_semantic_ids


def tiny_run(data, run_dir, model="SASRec", resume=False, **extra):
    return run(model, "tiny", overrides=tiny_overrides(data, **extra), run_dir=run_dir, resume=resume)


def test_checkpoint_round_trip_is_atomic_and_tensor_only(tmp_path):
    path = tmp_path / "c.pth"
    save_checkpoint({"format": CHECKPOINT_FORMAT, "state_dict": {"w": torch.ones(2)}, "history": [{"epoch": 0}]}, path)
    assert torch.equal(load_checkpoint(path)["state_dict"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pth"]


def test_models_state_outside_the_state_dict_round_trips_through_a_weights_only_checkpoint(tmp_path):
    """RecBole's ``other_parameter()``: ItemKNN keeps a scipy matrix, EASE numpy arrays, RippleNet nested
    dicts with numpy keys, SASRecF a submodule (its weights are in the state dict)."""
    import scipy.sparse as sp

    from recbole_qbert.training.other_parameter import decode_other_parameter, encode_other_parameter

    coo = sp.random(5, 4, density=0.4, format="coo", random_state=0)
    params = {"w": coo.tocsr(), "m": coo, "sim": np.arange(6.0).reshape(2, 3), "e": torch.ones(3), "n": 3,
              "ripple": {np.int64(1): [(np.array([1, 2]), [np.int32(3)])]}, "layer": torch.nn.Linear(2, 2)}
    path = tmp_path / "c.pth"
    save_checkpoint({"format": CHECKPOINT_FORMAT, "other_parameter": encode_other_parameter(params)}, path)
    back = decode_other_parameter(load_checkpoint(path)["other_parameter"])
    assert set(back) == set(params) - {"layer"}
    assert back["w"].format == "csr" and back["m"].format == "coo"
    assert (back["w"] != params["w"]).nnz == 0 and np.array_equal(back["m"].toarray(), coo.toarray())
    assert back["sim"].dtype == np.float64 and np.array_equal(back["sim"], params["sim"])
    assert torch.equal(back["e"], params["e"]) and back["n"] == 3
    (items, relations), = back["ripple"][1]
    assert np.array_equal(items, [1, 2]) and relations == [3]
    assert decode_other_parameter(None) is None
    with pytest.raises(QBertError, match="model state 'bad' holds a object"):
        encode_other_parameter({"bad": object()})


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize("content", [
    lambda p: torch.save({"format": CHECKPOINT_FORMAT, "config": Evil()}, p),   # a pickled object, as RecBole saves its Config
    lambda p: p.write_bytes(b"not a checkpoint"),
    lambda p: torch.save({"state_dict": {}}, p),                # tensors, but not our format
])
def test_unsafe_or_foreign_checkpoints_are_refused(tmp_path, content):
    path = tmp_path / "c.pth"
    content(path)
    with pytest.raises(QBertError, match="c.pth: not a"):
        load_checkpoint(path)


def test_run_record_and_checkpoints(tiny_data, tmp_path, in_tmp):
    record = tiny_run(tiny_data, tmp_path / "run", epochs=2)
    assert record["epochs_trained"] == 2 and record["stop_reason"] == "epochs"
    assert set(record["test"]) == {f"{m}@{k}" for m in ("recall", "ndcg", "mrr") for k in (5, 10, 20)}
    assert record["best_epoch"] in (0, 1)
    assert record["valid"]["ndcg@10"] == max(h["valid"]["ndcg@10"] for h in record["history"])
    assert record["data"] == {"users": 60, "items": 30, "interactions": sum(6 + u % 7 for u in range(60)),
                              "train_samples": sum(6 + u % 7 - 3 for u in range(60))}
    assert json.loads((tmp_path / "run" / "record.json").read_text())["config_hash"] == record["config_hash"]
    best = load_checkpoint(tmp_path / "run" / "best.pth")
    assert best["epoch"] == record["best_epoch"] and "model: SASRec" in best["config_yaml"]
    assert not [p for p in ("log", "log_tensorboard", "saved") if (in_tmp / p).exists()], \
        "RecBole wrote into the working directory"


def _trajectory(record):
    return [(h["epoch"], h["train_loss"], h["valid"]) for h in record["history"]], record["test"]


@pytest.mark.parametrize("model", ["SASRec", "QBERT4Rec"])
def test_resumed_run_is_the_straight_run_loss_by_loss(tiny_data, tmp_path, in_tmp, model):
    """1 epoch, then resume to 3, equals 3 epochs straight: every random state (torch, numpy, Python, the
    loader's shuffling, QBERT4Rec's mask generator) travels in last.pth. Dropout stays on, so a lost
    state changes the losses."""
    extra = {"sid_file": str(write_tiny_semantic_ids(tmp_path / "tiny.sid"))} if model == "QBERT4Rec" else {}
    straight = tiny_run(tiny_data, tmp_path / "straight", model, epochs=3, **extra)
    tiny_run(tiny_data, tmp_path / "split", model, epochs=1, **extra)
    resumed = tiny_run(tiny_data, tmp_path / "split", model, epochs=3, resume=True, **extra)
    assert [h["epoch"] for h in resumed["history"]] == [0, 1, 2]
    assert _trajectory(resumed) == _trajectory(straight)


def test_resume_keeps_the_training_phase(tiny_data, tmp_path, in_tmp):
    """A run that switched to fine-tuning stays in it when resumed with more epochs, although the new
    epoch budget puts it back before ``finetune_from``."""
    sid = str(write_tiny_semantic_ids(tmp_path / "tiny.sid"))
    first = tiny_run(tiny_data, tmp_path / "run", "QBERT4Rec", epochs=2, finetune_from=0.5, sid_file=sid)
    assert [h["train_stage"] for h in first["history"]] == ["pretrain", "finetune"]
    more = tiny_run(tiny_data, tmp_path / "run", "QBERT4Rec", epochs=6, finetune_from=0.5, sid_file=sid,
                    resume=True)
    assert [h["train_stage"] for h in more["history"]] == ["pretrain"] + ["finetune"] * 5


def test_fresh_start_into_a_run_folder_with_a_checkpoint_is_refused_and_keeps_it(tiny_data, tmp_path, in_tmp):
    tiny_run(tiny_data, tmp_path / "run", epochs=1)
    kept = {name: (tmp_path / "run" / name).read_bytes() for name in ("last.pth", "best.pth", "record.json")}
    with pytest.raises(QBertError, match=r"run/last.pth exists: pass --resume to continue it, or choose another "
                                         r"--checkpoint_dir$"):
        tiny_run(tiny_data, tmp_path / "run", epochs=2)
    assert {name: (tmp_path / "run" / name).read_bytes() for name in kept} == kept


def test_checkpoint_of_an_older_format_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "c.pth"
    torch.save({"format": 1, "state_dict": {}}, path)
    with pytest.raises(QBertError, match="c.pth: checkpoint of an older recbole-qbert .* fresh checkpoint_dir"):
        load_checkpoint(path)


def best_as_last(data, run_dir):
    (run_dir / "last.pth").write_bytes((run_dir / "best.pth").read_bytes())


def another_models_last(data, run_dir):
    tiny_run(data, run_dir.parent / "gru", model="GRU4Rec", epochs=1)
    (run_dir / "last.pth").write_bytes((run_dir.parent / "gru" / "last.pth").read_bytes())


@pytest.mark.parametrize("change, overrides, message", [
    (None, {"hidden_size": 16, "inner_size": 16}, "last.pth: checkpoint was made for config_hash"),
    (best_as_last, {}, r"last.pth: holds a model but not the training state to resume from \(no optimizer, rng"),
    (another_models_last, {}, "last.pth: checkpoint was made for model 'GRU4Rec', this run has 'SASRec'"),
], ids=["another-config", "best-as-last", "another-model"])
def test_resume_refuses_a_checkpoint_it_cannot_continue(tiny_data, tmp_path, in_tmp, change, overrides, message):
    tiny_run(tiny_data, tmp_path / "run", epochs=1)
    if change is not None:
        change(tiny_data, tmp_path / "run")
    last = (tmp_path / "run" / "last.pth").read_bytes()
    with pytest.raises(QBertError, match=message):
        tiny_run(tiny_data, tmp_path / "run", epochs=2, resume=True, **overrides)
    assert (tmp_path / "run" / "last.pth").read_bytes() == last, "the refused resume leaves the checkpoint alone"


def test_budget_cuts_the_epoch_that_spends_it_and_stops(tiny_data, tmp_path, in_tmp):
    record = tiny_run(tiny_data, tmp_path / "run", epochs=50, train_budget_s=1e-6, train_batch_size=16)
    assert len(record["history"]) == 1 and record["stop_reason"] == "budget"
    partial = record["history"][0]["partial"]
    assert partial["batches"] == 1 < partial["of"], "one batch, then the budget ends the epoch"
    assert record["epochs_trained"] == round(1 / partial["of"], 3)
    model, test = best_model("SASRec", "tiny", tiny_data, tmp_path / "run", train_batch_size=16)
    assert record["test"]["ndcg@10"] == pytest.approx(full_ranking_metrics(model, test)["ndcg@10"], abs=1e-4), \
        "the test metrics are those of the model the cut epoch left"


def test_raising_a_spent_budget_resumes_the_run_to_its_new_end(tiny_data, tmp_path, in_tmp):
    cut = tiny_run(tiny_data, tmp_path / "run", epochs=3, train_budget_s=1e-6)
    assert cut["stop_reason"] == "budget" and len(cut["history"]) == 1
    more = tiny_run(tiny_data, tmp_path / "run", epochs=3, train_budget_s=1e6, resume=True)
    assert more["stop_reason"] == "epochs" and [h["epoch"] for h in more["history"]] == [0, 1, 2]
    again = tiny_run(tiny_data, tmp_path / "run", epochs=3, resume=True)  # finished: nothing left to train
    assert again["stop_reason"] == "epochs" and again["history"] == more["history"]


def test_cpu_clock_budget_counts_this_process_cpu_seconds(tiny_data, tmp_path, in_tmp):
    record = tiny_run(tiny_data, tmp_path / "run", epochs=50, train_budget_s=0.2, train_budget_clock="cpu")
    assert record["stop_reason"] == "budget" and record["budget"]["train_budget_clock"] == "cpu"
    cpu = sum(h["train_cpu_s"] for h in record["history"])
    assert 0.2 <= cpu < 0.2 + max(h["train_cpu_s"] for h in record["history"]) + 0.5
    with pytest.raises(QBertError, match=r"train_budget_clock='moon': expected str \(one of wall, cpu\)"):
        tiny_run(tiny_data, tmp_path / "bad", epochs=1, train_budget_s=1, train_budget_clock="moon")


def test_budget_cuts_an_epoch_of_recbole_knowledge_graph_trainer(tmp_path, in_tmp):
    """RecBole's KGTrainer calls the loader's ``set_mode`` and ``knowledge_shuffle`` through the budget's
    wrapper (CKE on MovieLens-100K's knowledge graph, shipped in the recbole wheel)."""
    record = run("CKE", "ml-100k", run_dir=tmp_path / "run", overrides={
        "epochs": 5, "train_budget_s": 1, "embedding_size": 16, "kg_embedding_size": 16, "show_progress": False,
        "state": "WARNING"})
    assert record["stop_reason"] == "budget" and "partial" in record["history"][-1]


@pytest.mark.parametrize("model", ["BPR", "ItemKNN", "EASE"])
def test_general_models_train_and_reload_on_ml100k(model, tmp_path, in_tmp):
    """RecBole's general models (pairs with one sampled negative; ItemKNN's scipy and EASE's numpy state
    outside the state dict) train on the real MovieLens-100K and test on their best.pth reloaded."""
    from recbole_qbert.recommend import Recommender, load_data_and_model

    record = run(model, "ml-100k", run_dir=tmp_path / "run", overrides={
        "epochs": 1, "learning_rate": 0.01, "show_progress": False, "state": "WARNING"})
    assert record["test"]["ndcg@10"] > 3 * sum(1 / np.log2(r + 2) for r in range(10)) / 1682  # chance level
    if model == "BPR":
        assert record["config"]["train_neg_sample_args"]["sample_num"] == 1
    config, reloaded, dataset, _, _, test = load_data_and_model(tmp_path / "run" / "best.pth")
    again = make_trainer(config, reloaded).evaluate(test, load_best_model=False)
    assert again["ndcg@10"] == pytest.approx(record["test"]["ndcg@10"], abs=1e-4)
    with pytest.raises(QBertError, match=f"{model} is not a sequential model"):
        Recommender(config, reloaded, dataset)


def test_budgeted_batches_yield_all_before_the_deadline_and_at_least_one():
    from recbole_qbert.trainer import BudgetedBatches

    late = BudgetedBatches([1, 2, 3], deadline=time.perf_counter() + 3600)
    assert list(late) == [1, 2, 3] and not late.cut and len(late) == 3
    spent = BudgetedBatches([1, 2, 3], deadline=0.0)
    assert list(spent) == [1] and spent.cut


def test_test_metrics_agree_with_an_independent_full_ranking(tiny_data, tmp_path, in_tmp):
    """Recompute NDCG@10 and Recall@10 from the model's scores; RecBole's evaluator must agree."""
    record = tiny_run(tiny_data, tmp_path / "run", epochs=2)
    model, test = best_model("SASRec", "tiny", tiny_data, tmp_path / "run")
    independent = full_ranking_metrics(model, test)
    assert independent["users"] == 60
    assert record["test"]["ndcg@10"] == pytest.approx(independent["ndcg@10"], abs=1e-4)
    assert record["test"]["recall@10"] == pytest.approx(independent["recall@10"], abs=1e-4)


def test_history_filter_protocol_drops_each_users_history_from_the_ranking(tiny_data, tmp_path, in_tmp):
    """``eval_filter_history``: RecBole's evaluator then agrees with a full ranking without the user's
    history items, which differs from the default one (tiny users never repeat an item, so it is higher)."""
    record = tiny_run(tiny_data, tmp_path / "run", epochs=2, eval_filter_history=True)
    model, test = best_model("SASRec", "tiny", tiny_data, tmp_path / "run", eval_filter_history=True)
    filtered = full_ranking_metrics(model, test, filter_history=True)
    kept = full_ranking_metrics(model, test)
    assert record["test"]["ndcg@10"] == pytest.approx(filtered["ndcg@10"], abs=1e-4)
    assert record["test"]["recall@10"] == pytest.approx(filtered["recall@10"], abs=1e-4)
    assert filtered["recall@10"] > kept["recall@10"]
    assert record["config_hash"] != tiny_run(tiny_data, tmp_path / "plain", epochs=0)["config_hash"]


def test_history_filter_is_refused_for_a_general_model(tiny_data, tmp_path, in_tmp):
    with pytest.raises(QBertError, match="eval_filter_history: sequential models only"):
        tiny_run(tiny_data, tmp_path / "run", model="BPR", epochs=1, eval_filter_history=True)


def test_real_data_smoke_sasrec_on_ml100k(tmp_path, in_tmp):
    """One epoch of a small SASRec on the real MovieLens-100K through RecBole's Trainer and evaluator."""
    record = run("SASRec", "ml-100k", overrides={"epochs": 1, "hidden_size": 16, "inner_size": 32, "n_layers": 1,
                                                  "n_heads": 1, "show_progress": False, "state": "WARNING"},
                 run_dir=tmp_path / "run")
    assert record["data"]["users"] == 943 and record["data"]["items"] == 1682
    assert record["data"]["interactions"] == 100000
    # a random ranking of the 1,682 items hits the target in the top 20 with probability 20/1682, and has
    # NDCG@10 of sum(1/log2(r + 2) for r < 10)/1682; one epoch of SASRec is several times better
    chance_recall20, chance_ndcg10 = 20 / 1682, sum(1 / np.log2(r + 2) for r in range(10)) / 1682
    test = record["test"]
    assert test["recall@20"] > 3 * chance_recall20 and test["ndcg@10"] > 3 * chance_ndcg10
    assert test["recall@5"] <= test["recall@10"] <= test["recall@20"] and test["ndcg@10"] <= test["recall@10"]
    assert record["peak_memory"]["rss_mb"] > 0 and record["train_s_per_epoch"] > 0


def test_plateau_drop_continues_a_stopped_run_from_its_best_model_at_a_lower_rate(tiny_data, tmp_path, in_tmp):
    """``plateau_lr_drops``: a run that stopped early goes on from its best model at x0.1 the learning rate,
    patience anew; the epochs before the drop are the plain run's, and so is the config hash."""
    settings = dict(epochs=40, stopping_step=0, learning_rate=0.01)
    plain = tiny_run(tiny_data, tmp_path / "plain", **settings)
    assert plain["stop_reason"] == "early_stopping" and "plateau_lr_drops" not in plain["budget"]
    dropped = tiny_run(tiny_data, tmp_path / "drop", plateau_lr_drops=1, **settings)
    n = len(plain["history"])
    assert _trajectory(dropped)[0][:n] == _trajectory(plain)[0], "before the drop: the plain run"
    after = dropped["history"][n:]
    assert after and all(h["lr_drops"] == 1 for h in after) and after[0]["epoch"] == n
    assert dropped["stop_reason"] == "early_stopping" and dropped["config_hash"] == plain["config_hash"]
    assert dropped["budget"]["plateau_lr_drops"] == 1 and dropped["budget"]["plateau_lr_factor"] == 0.1
    last = load_checkpoint(tmp_path / "drop" / "last.pth")
    assert last["lr_drops_done"] == 1
    assert last["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.001)
    assert dropped["valid"]["ndcg@10"] == max(h["valid"]["ndcg@10"] for h in dropped["history"])


def test_raising_plateau_drops_resumes_a_stopped_run_as_if_straight(tiny_data, tmp_path, in_tmp):
    """A finished run resumed with a drop allowed equals the run made with the drop from the start,
    loss by loss; a checkpoint with more drops than the config allows is refused."""
    settings = dict(epochs=40, stopping_step=0, learning_rate=0.01)
    straight = tiny_run(tiny_data, tmp_path / "straight", plateau_lr_drops=1, **settings)
    tiny_run(tiny_data, tmp_path / "split", **settings)
    resumed = tiny_run(tiny_data, tmp_path / "split", plateau_lr_drops=1, resume=True, **settings)
    assert _trajectory(resumed) == _trajectory(straight)
    with pytest.raises(QBertError, match=r"last.pth: the run made 1 plateau drop\(s\) of x0.1, this config asks "
                                         r"for at most 0"):
        tiny_run(tiny_data, tmp_path / "split", resume=True, **settings)

"""QBERT4Rec through the runner: semantic-ID inputs, one sequence per user, pretrain -> fine-tune."""
import pytest
import torch

from fixtures.ranking import best_model, full_ranking_metrics
from fixtures.tiny import build_tiny_model, tiny_overrides, write_tiny_semantic_ids
from recbole_qbert.errors import QBertError
from recbole_qbert.data.qbert4rec_dataset import last_row_per_user
from recbole_qbert.runner import run

import numpy as np


def qbert(tiny_data, sid_file, run_dir, **extra):
    return run("QBERT4Rec", "tiny", overrides=tiny_overrides(tiny_data, sid_file=str(sid_file), **extra),
               run_dir=run_dir)


def test_last_row_per_user_keeps_each_users_latest_prefix():
    assert last_row_per_user(np.array([3, 3, 3, 1, 1, 2])).tolist() == [2, 4, 5]


def test_trains_on_one_sequence_per_user_and_evaluates_with_recbole(tiny_data, sid_file, tmp_path, in_tmp):
    record = qbert(tiny_data, sid_file, tmp_path / "run", epochs=2)
    assert record["data"]["train_samples"] == 60  # one per user, not one per prefix
    assert record["epochs_trained"] == 2 and set(record["test"]) >= {"ndcg@10", "recall@10", "mrr@10"}


def test_codes_only_model_has_no_per_item_parameters(tiny_data, sid_file, tmp_path, in_tmp):
    """Without the ID embedding an item is its codes: nothing is indexed by item id, so an item never
    seen in training scores exactly like a trained item with the same codes would."""
    qbert(tiny_data, sid_file, tmp_path / "codes", epochs=1)
    qbert(tiny_data, sid_file, tmp_path / "ids", epochs=1, use_id_embedding=True)
    from recbole_qbert.trainer import load_checkpoint

    codes = load_checkpoint(tmp_path / "codes" / "best.pth")["state_dict"]
    ids = load_checkpoint(tmp_path / "ids" / "best.pth")["state_dict"]
    n_items = ids["id_embedding.weight"].shape[0]
    per_item = [k for k, v in codes.items() if torch.is_tensor(v) and v.ndim and v.shape[0] == n_items]
    assert not per_item, "per-item tensors in codes-only"
    assert ids["output_bias"].shape == (n_items,)
    # give item 2 the codes of item 1: with the trained weights both now score the same for any state
    model, _ = build_tiny_model("QBERT4Rec", tiny_data, sid_file)
    model.load_state_dict(codes)
    model.item_codes[2] = model.item_codes[1]
    with torch.no_grad():
        scores = model.catalogue_scores(torch.randn(5, model.hidden_size))
    assert torch.equal(scores[:, 1], scores[:, 2]) and not torch.equal(scores[:, 1], scores[:, 3])


def test_pretrain_then_finetune_with_frozen_parts(tiny_data, sid_file, tmp_path, in_tmp):
    qbert(tiny_data, sid_file, tmp_path / "pre", epochs=1)
    record = qbert(tiny_data, sid_file, tmp_path / "ft", epochs=1, train_stage="finetune",
                   pretrained_checkpoint=str(tmp_path / "pre" / "best.pth"), freeze=["code_embeddings"])
    from recbole_qbert.trainer import load_checkpoint

    pre = load_checkpoint(tmp_path / "pre" / "best.pth")["state_dict"]
    ft = load_checkpoint(tmp_path / "ft" / "best.pth")["state_dict"]
    assert torch.equal(pre["code_embeddings.0.weight"], ft["code_embeddings.0.weight"])  # frozen
    assert not torch.equal(pre["trm_encoder.layer.0.feed_forward.dense_1.weight"],
                           ft["trm_encoder.layer.0.feed_forward.dense_1.weight"])  # fine-tuned
    assert record["stop_reason"] == "epochs"


def test_pre_norm_layers_replace_berts_and_train(tiny_data, sid_file, tmp_path, in_tmp, one_torch_thread):
    from recbole_qbert.model.prenorm import PreNormTransformer

    model, _ = build_tiny_model("QBERT4Rec", tiny_data, sid_file, transformer_norm="pre")
    assert isinstance(model.trm_encoder, PreNormTransformer) and not hasattr(model, "LayerNorm")
    record = qbert(tiny_data, sid_file, tmp_path / "run", epochs=40, learning_rate=0.01, transformer_norm="pre",
                   train_stage="finetune", hidden_dropout_prob=0.0, attn_dropout_prob=0.0)
    assert record["test"]["ndcg@10"] > 0.3  # the tiny walk: chance is about 0.1 (post-norm gets 0.13 here)


def test_pretrained_checkpoint_with_another_vocabulary_is_refused(tiny_data, tmp_path, in_tmp):
    small = write_tiny_semantic_ids(tmp_path / "a" / "tiny.sid", levels=(4, 8))
    big = write_tiny_semantic_ids(tmp_path / "b" / "tiny.sid", levels=(5, 8))
    qbert(tiny_data, small, tmp_path / "pre", epochs=1)
    with pytest.raises(QBertError, match="different code vocabulary: 'code_embeddings.0.weight' is \\(5, 8\\) there"):
        qbert(tiny_data, big, tmp_path / "ft", epochs=1, train_stage="finetune",
              pretrained_checkpoint=str(tmp_path / "pre" / "best.pth"))


def test_a_missing_or_foreign_pretrained_checkpoint_is_refused_before_training(tiny_data, sid_file, tmp_path, in_tmp):
    with pytest.raises(QBertError, match=r"nope.pth: checkpoint not found$"):
        qbert(tiny_data, sid_file, tmp_path / "ft", epochs=1, pretrained_checkpoint=str(tmp_path / "nope.pth"))
    run("SASRec", "tiny", overrides=tiny_overrides(tiny_data, epochs=1), run_dir=tmp_path / "sas")
    with pytest.raises(QBertError, match=r"sas/best.pth: checkpoint of model 'SASRec', not QBERT4Rec"):
        qbert(tiny_data, sid_file, tmp_path / "ft", epochs=1, pretrained_checkpoint=str(tmp_path / "sas" / "best.pth"))
    assert not (tmp_path / "ft").exists()


def test_one_run_pretrains_then_finetunes_from_the_given_share(tiny_data, sid_file, tmp_path, in_tmp):
    record = qbert(tiny_data, sid_file, tmp_path / "run", epochs=4, finetune_from=0.5)
    assert [h["train_stage"] for h in record["history"]] == ["pretrain", "pretrain", "finetune", "finetune"]


@pytest.mark.parametrize("extra, message", [
    ({"train_stage": "pretrian"}, "train_stage='pretrian': expected str \\(one of pretrain, finetune\\)"),
    ({"finetune_from": 1.0}, "finetune_from=1.0: expected float > 0 and < 1, or None"),
    ({"finetune_from": 0.5, "train_stage": "finetune"}, "finetune_from must be"),
    ({"mask_strategies": {"random": 0}}, "at least one strategy"),
    ({"mask_options": {"random": {"ratio": 1.5}}}, "ratio must be in"),
    ({"freeze": ["trm_encoder"]}, "nothing to keep frozen"),
])
def test_bad_model_configs_fail_before_training(tiny_data, sid_file, tmp_path, in_tmp, extra, message):
    with pytest.raises(QBertError, match=message):
        qbert(tiny_data, sid_file, tmp_path / "run", epochs=1, **extra)


def test_two_process_distributed_training_on_gloo(tiny_data, sid_file, tmp_path, in_tmp):
    """RecBole's distributed path (DistributedSampler, DDP gradient all-reduce, metric all-gather)
    with two CPU processes: multi-GPU users need no other code."""
    record = run("QBERT4Rec", "tiny", overrides=tiny_overrides(tiny_data, sid_file=str(sid_file), epochs=2),
                 run_dir=tmp_path / "ddp", nproc=2)
    assert record["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert record["epochs_trained"] == 2
    # the metrics gathered from both processes are those of the saved model over all 60 users
    model, test = best_model("QBERT4Rec", "tiny", tiny_data, tmp_path / "ddp", sid_file=str(sid_file))
    independent = full_ranking_metrics(model, test)
    assert independent["users"] == 60
    assert record["test"]["ndcg@10"] == pytest.approx(independent["ndcg@10"], abs=1e-4)
    assert record["test"]["recall@10"] == pytest.approx(independent["recall@10"], abs=1e-4)
    # its checkpoint loads in one process for recommendations
    from recbole_qbert.recommend import Recommender

    assert len(Recommender.from_run(tmp_path / "ddp").for_user("u1", k=3).items) == 3


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_length_buckets_give_the_same_hidden_states_as_full_padding(tiny_data, sid_file, tmp_path, in_tmp, norm):
    model, _ = build_tiny_model("QBERT4Rec", tiny_data, sid_file, transformer_norm=norm)
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 52, (64,), generator=g)
    items = torch.randint(1, 31, (64, 51), generator=g) * (torch.arange(51) < lengths.unsqueeze(1))
    mask = model.masking(lengths, 51, g)
    with torch.no_grad():
        full, bucketed = model.forward(items, lengths, mask), model.encode(items, lengths, mask)
    real = torch.arange(51) < lengths.unsqueeze(1)
    assert torch.allclose(full[real], bucketed[real], atol=1e-5)


@pytest.mark.parametrize("seen_item_bias, norm", [(False, "post"), (True, "post"), (True, "pre")])
def test_a_masked_item_is_hidden_from_the_model(tiny_data, sid_file, in_tmp, seen_item_bias, norm):
    """Changing the item at a masked position changes neither the hidden states nor the scores the
    model predicts there (the seen-item bias included); changing an unmasked item does (attention is
    bidirectional, in either layer layout)."""
    model, _ = build_tiny_model("QBERT4Rec", tiny_data, sid_file, seen_item_bias=seen_item_bias,
                                transformer_norm=norm)
    if seen_item_bias:
        model.seen_bias_raw.data.fill_(-0.05)
    items = torch.tensor([[3, 4, 5, 6, 7, 8, 0]])
    lengths = torch.tensor([6])
    mask = torch.tensor([[False, True, False, False, True, False, False]])
    masked_changed, unmasked_changed = items.clone(), items.clone()
    masked_changed[0, [1, 4]] = torch.tensor([20, 21])
    unmasked_changed[0, 5] = 22
    with torch.no_grad():
        base, masked, unmasked = (model.encode(x, lengths, mask) for x in (items, masked_changed, unmasked_changed))
        assert torch.allclose(base, masked, atol=1e-6)
        assert torch.allclose(model.masked_scores(items, lengths, mask),
                              model.masked_scores(masked_changed, lengths, mask), atol=1e-6)
        assert not torch.allclose(base[mask], unmasked[mask], atol=1e-4)
        if seen_item_bias:  # the unmasked items, and only they, carry the offset
            offset = model.masked_scores(items, lengths, mask) - model.catalogue_scores(base[mask])
            expected = torch.zeros_like(offset)
            expected[:, [3, 5, 6, 8]] = model.seen_bias.item()
            assert torch.allclose(offset[:, 1:], expected[:, 1:], atol=1e-5)


@pytest.mark.parametrize("seen_item_bias", [False, True])
def test_finetuning_scores_the_last_position_as_full_sort_predict_does(tiny_data, sid_file, in_tmp, seen_item_bias):
    """In fine-tuning (mask the slot after the history) the training loss of each user is the
    cross-entropy of ``full_sort_predict``'s scores at the training target: train and inference agree
    (with the seen-item bias, on the history as the seen items too)."""
    model, train = build_tiny_model("QBERT4Rec", tiny_data, sid_file, train_stage="finetune",
                                    seen_item_bias=seen_item_bias)
    if seen_item_bias:
        model.seen_bias_raw.data.fill_(-0.05)
    batch = next(iter(train))
    with torch.no_grad():
        scores = model.full_sort_predict(batch)
        expected = torch.nn.functional.cross_entropy(scores, batch["item_id"], reduction="none")
        losses = torch.stack([model.calculate_loss(batch[[b]]) for b in range(len(batch))])
    assert len(batch) == 60 and torch.allclose(losses, expected, atol=1e-5)


@pytest.mark.parametrize("seen_item_bias", [False, True])
def test_next_item_loss_predicts_each_item_from_the_items_before_it(tiny_data, sid_file, in_tmp, seen_item_bias):
    """The auxiliary loss is the mean cross-entropy of predicting item t + 1 from items 0..t alone (each
    prefix encoded on its own, its items the seen ones), over every position that has a next item."""
    model, _ = build_tiny_model("QBERT4Rec", tiny_data, sid_file, seen_item_bias=seen_item_bias,
                                transformer_norm="pre", next_item_loss_weight=0.5)
    if seen_item_bias:
        model.seen_bias_raw.data.fill_(-0.05)
    model.eval()  # no dropout: the two computations must agree exactly
    items = torch.tensor([[3, 4, 5, 6, 0, 0], [7, 3, 9, 10, 11, 12], [5, 8, 0, 0, 0, 0]])
    lengths = torch.tensor([4, 6, 2])
    expected = []
    with torch.no_grad():
        for b, n in enumerate(lengths.tolist()):
            for t in range(n - 1):
                prefix = items[b:b + 1, :t + 1]
                last = model._forward_causal(prefix, torch.tensor([t + 1]))[:, -1]
                scores = model.catalogue_scores(last, model.seen_items(prefix) if seen_item_bias else None)
                expected.append(torch.nn.functional.cross_entropy(scores, items[b:b + 1, t + 1]))
        assert torch.allclose(model.next_item_loss(items, lengths), torch.stack(expected).mean(), atol=1e-5)
        # causal: a later item changes nothing before it, an earlier one changes what follows
        later, earlier = items.clone(), items.clone()
        later[1, 4], earlier[1, 1] = 20, 20
        base, after_later, after_earlier = (model._forward_causal(x, lengths) for x in (items, later, earlier))
        assert torch.allclose(base[1, :4], after_later[1, :4], atol=1e-6)
        assert not torch.allclose(base[1, 1:], after_earlier[1, 1:], atol=1e-4)


def test_next_item_loss_trains_beside_the_masked_loss(tiny_data, sid_file, tmp_path, in_tmp):
    """The weighted auxiliary loss is added to the masked one (same masks drawn), and a run trains with it."""
    model, train = build_tiny_model("QBERT4Rec", tiny_data, sid_file, next_item_loss_weight=0.5)
    model.eval()
    batch = next(iter(train))
    items, lengths = model._with_slot(batch, batch["item_id"])
    state = model.generator.get_state()
    with torch.no_grad():
        total = model.calculate_loss(batch)
        model.generator.set_state(state)
        model.next_item_loss_weight = 0.0
        masked = model.calculate_loss(batch)
        assert torch.allclose(total, masked + 0.5 * model.next_item_loss(items, lengths), atol=1e-5)
    record = qbert(tiny_data, sid_file, tmp_path / "run", epochs=1, next_item_loss_weight=0.5)
    assert record["epochs_trained"] == 1 and record["config"]["next_item_loss_weight"] == 0.5

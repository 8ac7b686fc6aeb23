"""QSASRec: SASRec over semantic-ID items, every position of a whole history a training target."""
import pytest
import torch

from fixtures.tiny import build_tiny_model, tiny_overrides
from recbole_qbert.errors import QBertError
from recbole_qbert.model.future_targets import future_target_loss, future_targets
from recbole_qbert.runner import run


def qsasrec(tiny_data, sid_file, run_dir, **extra):
    return run("QSASRec", "tiny", overrides=tiny_overrides(tiny_data, sid_file=str(sid_file), **extra),
               run_dir=run_dir)


def build(tiny_data, sid_file, **extra):
    return build_tiny_model("QSASRec", tiny_data, sid_file, **extra)


def seen_bias_ranks_history_items_last(tiny_data, sid_file, run_dir):
    """No tiny user picks an item twice: the learned bias turns strongly negative, and then ranks every
    history item below every other item for the same state."""
    from recbole_qbert.training.checkpoint import load_checkpoint

    model, _ = build(tiny_data, sid_file, seen_item_bias=True)
    model.load_state_dict(load_checkpoint(run_dir / "best.pth")["state_dict"])
    assert model.seen_bias < -5.0
    model.seen_bias_raw.data.fill_(-100.0)
    history = torch.tensor([[3, 9, 4, 0]])
    with torch.no_grad():
        scores = model.catalogue_scores(torch.randn(1, model.hidden_size), model.seen_items(history))[0]
    others = torch.ones_like(scores, dtype=torch.bool)
    others[[0, 3, 4, 9]] = False
    assert scores[[3, 4, 9]].max() < scores[others].min()


@pytest.mark.parametrize("options, then", [
    ({}, None), ({"transformer_norm": "pre"}, None), ({"train_negatives": 8}, None),
    ({"seen_item_bias": True}, seen_bias_ranks_history_items_last),
], ids=["post", "pre", "sampled-softmax", "seen-bias"])
def test_trains_on_whole_histories_and_learns_the_walk(tiny_data, sid_file, tmp_path, in_tmp, one_torch_thread,
                                                       options, then):
    """In the tiny data the next item is always the last one plus one: a model that learns anything
    ranks it first for most users (chance NDCG@10 is about 0.1), whatever the layers, loss or score offset."""
    record = qsasrec(tiny_data, sid_file, tmp_path / "run", epochs=40, learning_rate=0.01,
                     hidden_dropout_prob=0.0, attn_dropout_prob=0.0, **options)
    assert record["data"]["train_samples"] == 60  # one sequence per user, not one sample per prefix
    assert record["test"]["ndcg@10"] > 0.6
    if then is not None:
        then(tiny_data, sid_file, tmp_path / "run")


def test_pre_norm_layers_replace_recboles(tiny_data, sid_file, tmp_path, in_tmp):
    from recbole_qbert.model.prenorm import PreNormTransformer

    model, _ = build(tiny_data, sid_file, transformer_norm="pre")
    assert isinstance(model.trm_encoder, PreNormTransformer) and not hasattr(model, "LayerNorm")
    with pytest.raises(QBertError, match=r"transformer_norm='mid': expected str \(one of post, pre\)"):
        build(tiny_data, sid_file, transformer_norm="mid")


@pytest.mark.parametrize("options", [{"transformer_norm": "post"}, {"transformer_norm": "pre"},
                                     {"seen_item_bias": True}, {"attention_recency_bias": True},
                                     {"future_targets": 2, "future_target_decay": 0.25, "seen_item_bias": True}],
                         ids=["post", "pre", "seen-bias", "recency-bias", "future-targets"])
def test_loss_is_the_mean_next_item_loss_over_every_prefix(tiny_data, sid_file, tmp_path, in_tmp, options):
    """One pass over a whole history gives each position the prediction that ``full_sort_predict``
    makes from the prefix ending there: the training objective is RecBole's per-prefix one (with the
    seen-item bias, each position's seen items are its prefix's; with ``future_targets: 2`` the prefix also
    learns the item after the next, weighted ``future_target_decay``)."""
    from recbole.data.interaction import Interaction

    model, train = build(tiny_data, sid_file, **options)
    if model.seen_bias_raw is not None:
        model.seen_bias_raw.data.fill_(-0.02)  # starts at 0, which would leave the check blind to it
    if model.recency_bias is not None:
        model.recency_bias.data.normal_(std=1.0)  # likewise: a distance bias leaves each prefix's states alone
    batch = next(iter(train))
    seq, lengths, target = batch["item_id_list"], batch["item_length"], batch["item_id"]
    weights = [model.future_target_decay ** ahead for ahead in range(model.future_targets)]
    with torch.no_grad():
        loss = model.calculate_loss(batch)
        total, weight = 0.0, 0.0
        for b in range(len(seq)):
            whole = torch.cat([seq[b, :lengths[b]], target[b:b + 1]])
            for k in range(1, len(whole)):
                prefix = torch.zeros_like(seq[:1])
                prefix[0, :k] = whole[:k]
                scores = model.full_sort_predict(Interaction({"item_id_list": prefix,
                                                              "item_length": torch.tensor([k])}))
                for ahead, w in enumerate(weights):
                    if k + ahead < len(whole):
                        nll = torch.nn.functional.cross_entropy(scores, whole[k + ahead:k + ahead + 1])
                        total, weight = total + w * nll.item(), weight + w
    assert loss.item() == pytest.approx(total / weight, rel=1e-5)


@pytest.mark.parametrize("norm, recency", [("post", False), ("pre", False), ("pre", True)],
                         ids=["post", "pre", "pre-recency"])
def test_a_position_never_sees_later_items(tiny_data, sid_file, tmp_path, in_tmp, norm, recency):
    model, _ = build(tiny_data, sid_file, transformer_norm=norm, attention_recency_bias=recency)
    if model.recency_bias is not None:
        model.recency_bias.data.normal_(std=1.0)
    items = torch.tensor([[3, 4, 5, 6, 7]])
    lengths = torch.tensor([5])
    changed = items.clone()
    changed[0, 3:] = torch.tensor([20, 21])
    with torch.no_grad():
        a, b = model.encode(items, lengths), model.encode(changed, lengths)
    assert torch.allclose(a[0, :3], b[0, :3], atol=1e-6)
    assert not torch.allclose(a[0, 3:], b[0, 3:])


def test_input_masking_hides_the_masked_items(tiny_data, sid_file, tmp_path, in_tmp):
    model, _ = build(tiny_data, sid_file, input_mask_strategies={"random": 1.0},
                     mask_options={"random": {"ratio": 0.5}})
    items = torch.tensor([[3, 4, 5, 6, 7, 8]])
    lengths = torch.tensor([6])
    mask = model.masking(lengths, 6, torch.Generator().manual_seed(1))
    assert 0 < int(mask.sum()) < 6
    changed = torch.where(mask, torch.full_like(items, 25), items)
    with torch.no_grad():
        assert torch.allclose(model.encode(items, lengths, mask), model.encode(changed, lengths, mask), atol=1e-6)
        assert not torch.allclose(model.encode(items, lengths), model.encode(changed, lengths))


def test_id_only_control_has_no_code_tables(tiny_data, sid_file, tmp_path, in_tmp):
    model, _ = build(tiny_data, sid_file, use_semantic_ids=False)
    assert len(model.code_embeddings) == 0 and model.id_embedding is not None
    with pytest.raises(QBertError, match="use_semantic_ids: False needs use_id_embedding: True"):
        build(tiny_data, sid_file, use_semantic_ids=False, use_id_embedding=False)


def test_content_features_are_unit_rows_aligned_to_recboles_item_ids(tiny_data, sid_file, content_file,
                                                                     tmp_path, in_tmp):
    path, table = content_file
    model, train = build(tiny_data, sid_file, content_features=[str(path), str(path)])
    dataset = train._dataset
    content = dataset.item_content  # (n_items, 12): the table twice, row 0 the padding item
    assert content.shape == (dataset.item_num, 12) and not content[0].any()
    for internal in range(1, dataset.item_num):
        token = dataset.id2token("item_id", internal)
        row = table.matrix[int(token[1:])]
        expected = torch.zeros(6) if token == "i3" else torch.from_numpy(row / (row ** 2).sum() ** 0.5)
        assert torch.allclose(content[internal, :6], expected, atol=1e-6)
        assert torch.equal(content[internal, :6], content[internal, 6:])
    assert model.content_projection.weight.shape == (model.hidden_size, 12)
    # the projected content is part of every item embedding, the padding item's included at zero
    items = torch.arange(dataset.item_num)
    with torch.no_grad():
        before = model.item_embeddings(items)
        model.content_projection.weight.add_(1.0)
        moved = (model.item_embeddings(items) - before).abs().sum(dim=1)
    assert moved[0] == 0 and moved[dataset.token2id("item_id", "i3")] == 0
    assert (moved > 0).sum() == dataset.item_num - 2


def test_content_features_alone_make_an_item_and_are_part_of_the_run_identity(tiny_data, sid_file, content_file,
                                                                              tmp_path, in_tmp):
    from recbole_qbert.features.table import FeatureTable
    from recbole_qbert.run_record import run_inputs

    path, _ = content_file
    record = qsasrec(tiny_data, sid_file, tmp_path / "run", epochs=1, use_semantic_ids=False,
                     use_id_embedding=False, content_features=[str(path)])
    assert record["inputs"]["content:toy.npz"] == FeatureTable.load(path).content_hash()
    # the identity follows the values, not the file: a rebuild with other timings in its meta keeps it
    table = FeatureTable.load(path)
    config = record["config"]
    table.meta["time_s"] = 123.0
    table.save(path)
    assert run_inputs(config)["content:toy.npz"] == record["inputs"]["content:toy.npz"]
    table.matrix[1, 0] += 1.0
    table.save(path)
    assert run_inputs(config)["content:toy.npz"] != record["inputs"]["content:toy.npz"]
    with pytest.raises(QBertError, match="feature file not found"):
        build(tiny_data, sid_file, content_features=[str(tmp_path / "none.npz")])
    other = tmp_path / "other.npz"
    table = FeatureTable.load(path)
    table.meta["dataset"] = "ml-100k"
    table.save(other)
    with pytest.raises(QBertError, match="other.npz: made for dataset 'ml-100k', not 'tiny'"):
        build(tiny_data, sid_file, content_features=[str(other)])


@pytest.mark.parametrize("seen_bias,temperature", [(False, None), (True, None), (True, 0.1)])
def test_sampled_softmax_is_cross_entropy_over_the_target_and_the_drawn_items(tiny_data, sid_file, tmp_path,
                                                                               in_tmp, seen_bias, temperature):
    """The sampled loss scores candidates as ``catalogue_scores`` does, and a drawn item equal to a row's
    target is left out of that row (it would be its own negative)."""
    model, _ = build(tiny_data, sid_file, seen_item_bias=seen_bias, score_temperature=temperature)
    hidden = torch.randn(6, model.hidden_size)
    targets = torch.tensor([1, 2, 3, 4, 5, 6])
    generator = torch.Generator().manual_seed(0)
    drawn = torch.randint(1, model.n_items, (40,), generator=torch.Generator().manual_seed(0))
    assert (drawn.unsqueeze(0) == targets.unsqueeze(1)).any()  # the check below covers a collision
    seen = None
    if seen_bias:  # histories holding some drawn items and, in row 4, its target (5)
        model.seen_bias_raw.data.fill_(-0.015)
        seen = model.seen_items(torch.stack([drawn[:3], drawn[5:8], drawn[10:13], drawn[:3], torch.tensor([5, 2, 0]),
                                             torch.tensor([7, 8, 0])]))
    with torch.no_grad():
        loss = model.sampled_softmax_loss(hidden, targets, 40, generator, seen)
        scores = model.catalogue_scores(hidden, seen)
    expected = []
    for row, target in enumerate(targets):
        negatives = scores[row, drawn[drawn != target]]
        expected.append(torch.logsumexp(torch.cat([scores[row, target:target + 1], negatives]), 0)
                        - scores[row, target])
    assert loss.item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-5)


def test_bpr_loss_is_refused_before_training(tiny_data, sid_file, tmp_path, in_tmp):
    with pytest.raises(QBertError, match="QSASRec trains with loss_type CE only"):
        qsasrec(tiny_data, sid_file, tmp_path / "run", epochs=1, loss_type="BPR")


def test_a_text_only_source_gives_the_backbone_and_content_map_to_a_model_with_codes(tiny_data, sid_file,
                                                                                     content_file, tmp_path, in_tmp):
    """Cross-domain pretraining between datasets quantized apart: the source knows items by content only,
    the target takes the parts that do not depend on the item set and keeps its own code tables."""
    from recbole_qbert.training.checkpoint import load_checkpoint

    path, _ = content_file
    text = dict(transformer_norm="pre", content_features=[str(path)])
    qsasrec(tiny_data, sid_file, tmp_path / "pre", epochs=1, use_semantic_ids=False, use_id_embedding=False, **text)
    source = tmp_path / "pre" / "best.pth"
    with pytest.raises(QBertError, match="lacks 'code_embeddings.0.weight'.*leave that part out of pretrained_parts"):
        build(tiny_data, sid_file, pretrained_checkpoint=str(source), **text)
    parts = ["position_embedding", "trm_encoder", "content_projection"]
    model, _ = build(tiny_data, sid_file, pretrained_checkpoint=str(source), pretrained_parts=parts, **text)
    pre = load_checkpoint(source)["state_dict"]
    mine = model.state_dict()
    given = [k for k in pre if k.startswith(tuple(parts))]
    assert {p for p in parts if any(k.startswith(p) for k in given)} == set(parts)
    assert all(torch.equal(pre[k], mine[k]) for k in given)
    assert "code_embeddings.0.weight" in mine and "code_embeddings.0.weight" not in pre
    with pytest.raises(QBertError, match="pretrained_parts: unknown part 'id_embedding'"):
        build(tiny_data, sid_file, pretrained_checkpoint=str(source), pretrained_parts=["id_embedding"], **text)


def test_score_temperature_scores_by_cosine_over_the_temperature(tiny_data, sid_file, tmp_path, in_tmp):
    """With ``score_temperature`` an item's score is cos(hidden, item embedding) / temperature plus its bias,
    so it no longer grows with the norm of either vector."""
    model, _ = build(tiny_data, sid_file, score_temperature=0.05)
    torch.nn.init.normal_(model.output_bias)  # starts at 0, which would leave the check blind to it
    hidden = torch.randn(4, model.hidden_size)
    with torch.no_grad():
        scores = model.catalogue_scores(hidden)
        items = model.all_item_embeddings()
        expected = torch.nn.functional.cosine_similarity(hidden.unsqueeze(1), items.unsqueeze(0), dim=-1) / 0.05
        assert torch.allclose(scores[:, 1:], (expected + model.all_item_biases())[:, 1:], atol=1e-4)
        assert torch.allclose(model.catalogue_scores(7.0 * hidden)[:, 1:], scores[:, 1:], atol=1e-4)
    assert scores[:, 0].eq(float("-inf")).all()


def test_future_targets_list_the_next_items_of_each_position():
    items = torch.tensor([[3, 4, 5, 0], [6, 7, 0, 0]])
    targets = future_targets(items, torch.tensor([3, 2]), torch.tensor([9, 8]), window=3)
    assert targets.shape == (2, 4, 3)
    assert targets[0].tolist() == [[4, 5, 9], [5, 9, 0], [9, 0, 0], [0, 0, 0]]
    assert targets[1].tolist() == [[7, 8, 0], [8, 0, 0], [0, 0, 0], [0, 0, 0]]


def test_future_target_loss_weights_each_pair_by_its_distance():
    scores = torch.randn(3, 6, requires_grad=True)
    targets = torch.tensor([[1, 2], [3, 0], [4, 5]])
    nll = -torch.log_softmax(scores, dim=-1)
    expected = (nll[0, 1] + nll[1, 3] + nll[2, 4] + 0.5 * (nll[0, 2] + nll[2, 5])) / 4.0
    loss = future_target_loss(scores, targets, decay=0.5)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert torch.isfinite(scores.grad).all()
    plain = torch.nn.functional.cross_entropy(scores, targets[:, 0])
    assert future_target_loss(scores, targets[:, :1], decay=0.5).item() == pytest.approx(plain.item())


def test_future_targets_need_the_full_softmax(tiny_data, sid_file, tmp_path, in_tmp):
    with pytest.raises(QBertError, match="future_targets"):
        build(tiny_data, sid_file, future_targets=2, train_negatives=8)


def test_recency_bias_reweighs_attention_by_distance(tiny_data, sid_file, tmp_path, in_tmp):
    """The bias starts at zero (the plain model) and, once learned, changes the states of positions that
    attend to more than one item, but not the first (it sees only itself)."""
    model, _ = build(tiny_data, sid_file, attention_recency_bias=True, hidden_dropout_prob=0.0, attn_dropout_prob=0.0)
    model.eval()
    items, lengths = torch.tensor([[3, 4, 5, 6, 7]]), torch.tensor([5])
    with torch.no_grad():
        before = model.encode(items, lengths)
        model.recency_bias.data[:, 1:] = -5.0  # every head now looks mostly at the current item
        after = model.encode(items, lengths)
    assert model.recency_bias.shape == (model.n_heads, model.max_seq_length)
    assert torch.allclose(before[0, 0], after[0, 0], atol=1e-6)
    assert not torch.allclose(before[0, 1:], after[0, 1:], atol=1e-4)

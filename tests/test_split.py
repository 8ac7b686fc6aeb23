"""The protocol's leave-one-out split (recbole_qbert.data.split) is the one RecBole applies: on a
made-up table with ties and short users, and user by user on the real Scientific subset, where the
stages' training part must be exactly what the models train on and hold no validation or test target."""
import numpy as np

from fixtures.scientific_clip import needs_scientific
from recbole_qbert.data.atomic_files import read_dataset
from recbole_qbert.data.split import leave_one_out, rows_by_user
from recbole_qbert.features.catalog import load_catalog


def test_ties_in_time_keep_file_order_and_short_users_hold_out_less():
    users = np.array(["b", "a", "b", "a", "b", "c", "b", "d", "d", "a"])
    times = np.array([5, 1, 2, 3, 2, 0, 9, 4, 4, 3], dtype=float)
    order, groups = rows_by_user(users, times)
    assert order.tolist() == ["c", "a", "b", "d"], "users in the order they first appear in time"
    assert [g.tolist() for g in groups] == [[5], [1, 3, 9], [2, 4, 0, 6], [7, 8]]
    split = {s.user: (s.train.tolist(), s.valid, s.test) for s in leave_one_out(users, times)}
    assert split == {"c": ([5], None, None), "a": ([1], 3, 9), "b": ([2, 4], 0, 6), "d": ([7], None, 8)}


def test_without_timestamps_the_file_order_is_the_time_order():
    split = leave_one_out(np.array(["u", "v", "u", "u", "u"]), None)
    assert [(s.user, s.train.tolist(), s.valid, s.test) for s in split] == [("u", [0, 2], 3, 4),
                                                                            ("v", [1], None, None)]


def recbole_split(data_path, dataset, model, **extra):
    """``{user token: {part: [(history items, target item)]}}``: the samples the runner's ``load_data``
    puts in ``train``, ``valid`` and ``test`` for ``model`` (SequentialDataset: one per prefix)."""
    from fixtures.tiny import TINY_CONFIG
    from recbole_qbert.config import build_config
    from recbole_qbert.model_registry import is_own_model, resolve_model
    from recbole_qbert.runner import load_data

    model_class = resolve_model(model)
    config = build_config(model_class, dataset, overrides={**TINY_CONFIG, "data_path": str(data_path), **extra},
                          own_model=is_own_model(model))
    _, *loaders = load_data(config, model_class)
    parts = {}
    for part, loader in zip(("train", "valid", "test"), loaders):
        data = loader._dataset
        inter = data.inter_feat
        users = data.id2token("user_id", inter["user_id"].numpy()).tolist()
        targets = data.id2token("item_id", inter["item_id"].numpy()).tolist()
        for user, history, length, target in zip(users, inter["item_id_list"].numpy(), inter["item_length"].tolist(),
                                                  targets):
            history = data.id2token("item_id", history[:length]).tolist()
            parts.setdefault(user, {}).setdefault(part, []).append((history, target))
    return parts


def trained_on(samples):
    """The items of a user's training samples in time order: the first history's first item, then every target."""
    return [samples[0][0][0]] + [target for _, target in samples]


@needs_scientific
def test_stage_training_part_is_recboles_training_split_on_real_data(scientific_data, tmp_path, in_tmp):
    from recbole_qbert.semantic_ids import SemanticIDs, write_semantic_ids

    dataset = read_dataset("amazon-scientific", scientific_data)
    inter = dataset.interactions
    ours = {s.user: s for s in leave_one_out(inter.users, inter.times)}
    items = inter.items

    parts = recbole_split(scientific_data, "amazon-scientific", "SASRec")
    assert set(parts) == set(ours) and len(ours) == 2928
    for user, split in ours.items():
        assert len(split.train) >= 3, "5-core data: every user has a training part, a validation and a test target"
        samples = parts[user]
        (valid_history, valid), = samples["valid"]
        (_, test), = samples["test"]
        assert items[split.train].tolist() == trained_on(samples["train"]), user
        assert (items[split.valid], items[split.test]) == (valid, test), user
        assert valid_history[-1] == items[split.train[-1]]
        assert not {split.valid, split.test} & set(split.train.tolist()), "no held-out row in training"

    # stage 1 reads the same split
    catalog = load_catalog("amazon-scientific", scientific_data)
    assert [catalog.tokens[s].tolist() for s in catalog.train_sequences] == [
        items[s.train].tolist() for s in ours.values()]

    # QBERT4Rec keeps one training row per user: the training part (its last 51 items), no held-out target
    n = len(dataset.tokens)
    codes = np.stack([np.arange(n) % 64, np.arange(n) // 64], axis=1)
    sid = tmp_path / "amazon-scientific.sid"
    write_semantic_ids(sid, SemanticIDs(dataset.tokens, codes, [64, 25]), {"dataset": "amazon-scientific"})
    parts = recbole_split(scientific_data, "amazon-scientific", "QBERT4Rec", sid_file=str(sid))
    for user, split in ours.items():
        (history, target), = parts[user]["train"]
        assert history + [target] == items[split.train].tolist()[-51:], user


def test_stage_training_rows_are_never_a_models_target(tmp_path, in_tmp):
    """Users with fewer than four interactions: RecBole's per-prefix split holds out less of them than
    the protocol's split, so what the stages train on is never a validation or test target."""
    folder = tmp_path / "short"
    folder.mkdir()
    lengths = (1, 2, 3, 4, 7)
    rows = ["user_id:token\titem_id:token\ttimestamp:float"]
    rows += [f"u{n}\ti{n}_{k}\t{k}" for n in lengths for k in range(n)]
    (folder / "short.inter").write_text("\n".join(rows) + "\n")
    inter = read_dataset("short", tmp_path).interactions
    ours = {s.user: inter.items[s.train].tolist() for s in leave_one_out(inter.users, inter.times)}
    assert ours == {"u1": ["i1_0"], "u2": ["i2_0"], "u3": ["i3_0"], "u4": ["i4_0", "i4_1"],
                    "u7": [f"i7_{k}" for k in range(5)]}
    parts = recbole_split(tmp_path, "short", "SASRec", topk=[10])  # 17 items: too few for the top 20
    assert {u: trained_on(p["train"]) for u, p in parts.items()} == {
        "u2": ["i2_0", "i2_1"], "u3": ["i3_0", "i3_1"], "u4": ["i4_0", "i4_1"], "u7": [f"i7_{k}" for k in range(5)]}
    for user, train in ours.items():
        held = [target for part in ("valid", "test") for _, target in parts.get(user, {}).get(part, [])]
        assert not set(train) & set(held), user

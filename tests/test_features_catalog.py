"""Stage-1 view of a dataset: item tokens, CSV-quoted item fields, and training sequences exactly as
RecBole's leave-one-out split leaves them (no validation or test target leaks into stage 1)."""
import numpy as np
import pytest

from fixtures.stage1 import write_shop
from recbole_qbert.errors import QBertError
from recbole_qbert.features.catalog import load_catalog


def seqs(catalog):
    return sorted(tuple(catalog.tokens[s].tolist()) for s in catalog.train_sequences)


def test_catalog_reads_fields_and_holds_out_last_two(tmp_path):
    write_shop(tmp_path, with_images=False)
    cat = load_catalog("shop", tmp_path)
    assert cat.tokens.tolist() == ["A1", "A2", "A3", "A4", "A5", "A6"]
    assert cat.fields["title"][1] == 'Lip Balm "Cherry"', "CSV quoting is undone"
    assert cat.fields["title"][4] == "" and cat.field_types["categories"] == "token_seq"
    # u1 A1..A5 -> A1 A2 A3; u2 -> A2 A3; u3 (3 items) -> A6; u4 (2 items: test only) -> A3
    assert seqs(cat) == [("A1", "A2", "A3"), ("A2", "A3"), ("A3",), ("A6",)]
    pairs = sorted(tuple(cat.tokens[p].tolist()) for p in cat.valid_pairs)
    assert pairs == [("A3", "A4"), ("A3", "A6"), ("A6", "A4")]
    assert cat.train_counts().tolist() == [1, 2, 3, 0, 0, 1]
    assert cat.display_name(4) == "item A5" and cat.display_name(0) == "Rose Hand Cream"


def test_ml100k_comes_from_the_wheel_with_titles():
    cat = load_catalog("ml-100k", "/nonexistent")
    assert len(cat) == 1682 and cat.fields["movie_title"][cat.index["1"]] == "Toy Story"
    assert sum(len(s) for s in cat.train_sequences) == 100000 - 2 * 943


def test_training_sequences_match_recboles_split(tmp_path, in_tmp):
    """Ties in time keep file order, as RecBole's stable sort does; the train split is RecBole's."""
    folder = tmp_path / "ties"
    folder.mkdir()
    rows = ["user_id:token\titem_id:token\ttimestamp:float"]
    rng = np.random.default_rng(0)
    for u in range(12):
        n = 1 + u % 6
        for k in range(n):
            rows.append(f"u{u}\ti{int(rng.integers(0, 15))}\t{int(rng.integers(0, 3))}")
    order = rng.permutation(len(rows) - 1) + 1  # shuffle lines so users interleave
    (folder / "ties.inter").write_text("\n".join([rows[0]] + [rows[i] for i in order]) + "\n")
    cat = load_catalog("ties", tmp_path)

    from recbole.config import Config
    from recbole.data import create_dataset

    config = Config(model="Pop", dataset="ties", config_dict={
        "data_path": str(tmp_path), "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "show_progress": False, "state": "ERROR", "use_gpu": False})
    dataset = create_dataset(config)
    train, valid, _ = dataset.build()
    expected = {}
    for u, i in zip(train.inter_feat["user_id"].tolist(), train.inter_feat["item_id"].tolist()):
        expected.setdefault(dataset.id2token("user_id", u), []).append(str(dataset.id2token("item_id", i)))
    ours = sorted(tuple(cat.tokens[s].tolist()) for s in cat.train_sequences if len(s))
    assert ours == sorted(tuple(v) for v in expected.values())
    assert len(cat.valid_pairs) == len(valid.inter_feat)
    assert sorted(cat.tokens[cat.valid_pairs[:, 1]].tolist()) == sorted(
        str(dataset.id2token("item_id", i)) for i in valid.inter_feat["item_id"].tolist())


def test_missing_dataset_and_bad_files(tmp_path):
    with pytest.raises(QBertError, match="interaction file not found"):
        load_catalog("nothing", tmp_path)
    with pytest.raises(QBertError, match="not a plain folder name"):
        load_catalog("../x", tmp_path)
    folder = write_shop(tmp_path, with_images=False)
    (folder / "shop.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\nu1\tA1\tsoon\n")
    with pytest.raises(QBertError, match="line 2: timestamp is not a number"):
        load_catalog("shop", tmp_path)
    (folder / "shop.inter").write_text("user:token\titem_id:token\nu1\tA1\n")
    with pytest.raises(QBertError, match="lacks column 'user_id'"):
        load_catalog("shop", tmp_path)

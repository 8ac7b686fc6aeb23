"""Image features: open_clip (randomly initialised) over generated images with missing and corrupt ones
counted, and the importer of precomputed features with its checks."""
import numpy as np
import pytest

from fixtures.errors import one_line_error
from fixtures.stage1 import write_shop
from recbole_qbert.errors import QBertError
from recbole_qbert.features.image import (extract_image_features, image_field, import_raw_features, load_open_clip,
                                          read_image)
from recbole_qbert.features.catalog import load_catalog
from recbole_qbert.stage_config import load_stage_config

from dataset_prep.extract_features import DEFAULTS, main


@pytest.fixture
def shop(tmp_path):
    write_shop(tmp_path)
    return load_catalog("shop", tmp_path)


@pytest.fixture(scope="module")
def small_clip():
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    return load_open_clip("ViT-S-32", None)


def test_open_clip_random_init_counts_missing_and_corrupt_images(shop, small_clip):
    cfg = load_stage_config(DEFAULTS, overrides={"image_model": "ViT-S-32", "image_pretrained": None,
                                                 "image_batch_size": 2})
    table, notes = extract_image_features(shop, cfg, progress=False, model_and_preprocess=small_clip)
    assert table.present.tolist() == [True, True, False, False, False, True]
    assert table.meta["failures"] == {"no_image": 1, "missing": 1, "corrupt": 1}
    assert "A3" in table.meta["failure_examples"]["missing"]
    assert table.matrix.shape == (6, table.meta["dim"]) and np.isfinite(table.matrix).all()
    assert not table.matrix[2:5].any() and table.matrix[0].any()
    assert not np.allclose(table.matrix[0], table.matrix[1]), "different images, different vectors"
    assert notes == ["1 items no image", "1 items missing", "1 items corrupt"]


def test_read_image_causes(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "ok.jpg")
    assert read_image("ok.jpg", tmp_path)[0].size == (8, 8)
    assert read_image("nope.jpg", tmp_path) == (None, "missing")
    assert read_image("http://127.0.0.1:9/x.png", tmp_path, timeout=2) == (None, "unreachable")
    (tmp_path / "bad.jpg").write_bytes(b"junk")
    assert read_image(str(tmp_path / "bad.jpg"), tmp_path) == (None, "corrupt")


def test_image_field_and_unloadable_weights(shop):
    assert image_field(shop, None) == "image"
    with pytest.raises(QBertError, match="image field 'photo' is not an item field"):
        image_field(shop, "photo")
    with pytest.raises(QBertError, match="open_clip has no model 'ViT-Nope'"):
        load_open_clip("ViT-Nope", None)
    with pytest.raises(QBertError, match="pretrained 'no-such-tag' cannot be loaded.*image_pretrained"):
        load_open_clip("ViT-S-32", "no-such-tag")


def write_import(tmp_path, tokens, matrix):
    (tmp_path / "f.index").write_text("".join(f"{t}\t{k}\n" for k, t in enumerate(tokens)))
    np.asarray(matrix, dtype="<f4").tofile(tmp_path / "f.bin")
    return tmp_path / "f.bin", tmp_path / "f.index"


def test_import_aligns_rows_by_token_and_masks_zero_rows(shop, tmp_path):
    tokens = ["A6", "A5", "A4", "A3", "A2", "A1"]
    matrix = np.arange(6 * 4, dtype=np.float32).reshape(6, 4) + 1
    matrix[1] = 0.0
    feats, index = write_import(tmp_path, tokens, matrix)
    table, notes = import_raw_features(shop, feats, index, dim=4, view="image", modality="image", encoder="x")
    assert table.tokens.tolist() == shop.tokens.tolist()
    np.testing.assert_array_equal(table.matrix[0], matrix[5])
    assert table.present.tolist() == [True, True, True, True, False, True]
    assert notes == ["1 all-zero rows marked not present"]


@pytest.mark.parametrize("edit, kwargs, message", [
    (lambda t, m: (t, m[:, :3]), {}, "not a whole number of 4-d float32 rows"),
    (lambda t, m: (t[:5], m), {}, "6 rows, but .* names 5 items"),
    (lambda t, m: (t, np.where(np.arange(6)[:, None] == 2, np.nan, m)), {}, "1 rows hold NaN.*--nan-as-missing"),
    (lambda t, m: (t[:5] + ["B9"], m), {}, "1 of its 6 items are not items of shop.*another item set"),
    (lambda t, m: (t[:5], m[:5]), {}, "lacks 1 of the 6 items of shop.*--allow-missing"),
])
def test_import_refuses_bad_features(shop, tmp_path, edit, kwargs, message):
    tokens, matrix = edit(shop.tokens.tolist(), np.ones((6, 4), dtype=np.float32))
    feats, index = write_import(tmp_path, tokens, np.asarray(matrix).ravel())
    with pytest.raises(QBertError, match=message):
        import_raw_features(shop, feats, index, dim=4, view="image", modality="image", encoder="x", **kwargs)


def test_import_fallbacks_for_nan_and_missing_rows(shop, tmp_path):
    matrix = np.ones((5, 4), dtype=np.float32)
    matrix[0, 1] = np.nan
    feats, index = write_import(tmp_path, shop.tokens.tolist()[:5], matrix)
    table, notes = import_raw_features(shop, feats, index, dim=4, view="image", modality="image", encoder="x",
                                       allow_missing=True, nan_as_missing=True)
    assert table.present.tolist() == [False, True, True, True, True, False]
    assert any("NaN" in n for n in notes) and any("no imported row" in n for n in notes)


def test_cli_import_writes_nothing_on_bad_input(tmp_path, capsys):
    write_shop(tmp_path / "atomic", with_images=False)
    feats, index = write_import(tmp_path, ["A1", "A2"], np.ones((2, 4)))
    argv = ["import", "--dataset", "shop", "--data-path", str(tmp_path / "atomic"), "--out", str(tmp_path / "out"),
            "--features", str(feats), "--index", str(index), "--dim", "4", "--view", "image"]
    assert main(argv) == 2
    one_line_error(capsys, "lacks 4 of the 6 items")
    assert not (tmp_path / "out").exists()
    assert main(argv + ["--allow-missing"]) == 0
    assert [p.name for p in (tmp_path / "out" / "shop").iterdir()] == ["image.npz"]


@pytest.mark.parametrize("edit, message", [
    ({"--dim": "-4"}, "--dim -4: expected a feature width >= 1"),
    ({"--dim": "0"}, "--dim 0: expected a feature width >= 1"),
    ({"--modality": "smell"}, "--modality smell: expected one of text, image, structural"),
    ({"--view": "scent"}, "--view scent: modality 'scent': expected one of text, image, structural; pass --modality"),
    ({"--view": "../../evil"}, "--view '../../evil': a view name is a plain file name"),
    ({"--view": ".."}, "--view '..': a view name is a plain file name"),
])
def test_cli_import_refuses_bad_dim_modality_and_view(tmp_path, capsys, edit, message):
    write_shop(tmp_path / "atomic", with_images=False)
    feats, index = write_import(tmp_path, ["A1", "A2", "A3", "A4", "A5", "A6"], np.ones((6, 4)))
    options = {"--features": str(feats), "--index": str(index), "--dim": "4", "--view": "image", **edit}
    argv = ["import", "--dataset", "shop", "--data-path", str(tmp_path / "atomic"), "--out", str(tmp_path / "out"),
            *(x for pair in options.items() for x in pair)]
    assert main(argv) == 2
    one_line_error(capsys, message)
    assert not (tmp_path / "out").exists() and not list(tmp_path.rglob("evil*"))


def test_cli_refuses_a_file_in_place_of_the_output_folder(tmp_path, capsys):
    write_shop(tmp_path / "atomic", with_images=False)
    (tmp_path / "out").write_text("")
    assert main(["structural", "--dataset", "shop", "--data-path", str(tmp_path / "atomic"), "--out",
                 str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'out'}: is a file, cannot write {tmp_path / 'out' / 'shop'} under it\n"

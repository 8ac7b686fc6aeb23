"""FeatureTable: keyed by token, masks absent content, refuses NaN and foreign item sets."""
import re
import warnings

import numpy as np
import pytest

from recbole_qbert.errors import QBertError
from recbole_qbert.features import FeatureTable


def table(n=4, d=3, present=None):
    return FeatureTable([f"i{k}" for k in range(n)], np.arange(n * d, dtype=np.float32).reshape(n, d),
                        np.ones(n, bool) if present is None else present, {"encoder": "test"})


def test_save_load_round_trip(tmp_path):
    t = table(present=np.array([True, False, True, True]))
    t.save(tmp_path / "f.npz")
    back = FeatureTable.load(tmp_path / "f.npz")
    assert back.tokens.tolist() == t.tokens.tolist() and back.meta == {"encoder": "test"}
    assert np.array_equal(back.matrix, t.matrix) and back.present.tolist() == [True, False, True, True]
    assert not back.matrix[1].any(), "absent rows are zeros, not content"
    assert back.content_hash() == t.content_hash()
    assert [p.name for p in tmp_path.iterdir()] == ["f.npz"]


def test_align_reorders_and_refuses_other_item_sets():
    t = table()
    assert t.align(["i2", "i0", "i1", "i3"]).matrix[0].tolist() == [6, 7, 8]
    with pytest.raises(QBertError, match="lacks 1 of the dataset's 5 items"):
        t.align(["i0", "i1", "i2", "i3", "i9"])
    assert t.align(["i0", "i1", "i2", "i3", "i9"], allow_absent=True).present.tolist() == [True] * 4 + [False]
    with pytest.raises(QBertError, match="another item set"):
        t.align(["i0", "i1"])


@pytest.mark.parametrize("make, message", [
    (lambda: FeatureTable(["a", "b"], np.full((2, 2), np.nan), [True, True]), "2 rows hold NaN"),
    (lambda: FeatureTable(["a", "b"], np.zeros((3, 2)), [True, True]), "shape \\(3, 2\\)"),
    (lambda: FeatureTable(["a", "a"], np.zeros((2, 2)), [True, True]), "not unique"),
])
def test_invalid_tables(make, message):
    with pytest.raises(QBertError, match=message):
        make()


def test_nan_in_an_absent_row_is_ignored():
    t = FeatureTable(["a", "b"], np.array([[1.0, 2.0], [np.nan, np.nan]]), [True, False])
    assert t.matrix[1].tolist() == [0.0, 0.0]


def test_unreadable_file(tmp_path):
    (tmp_path / "f.npz").write_bytes(b"junk")
    with pytest.raises(QBertError, match="f.npz: not a readable feature table"):
        FeatureTable.load(tmp_path / "f.npz")


@pytest.mark.parametrize("arrays, message", [
    ({"meta": np.array("{not json")}, "meta is not readable JSON"),
    ({"meta": np.array("[1, 2]")}, "meta is not a JSON object \\(a list\\)"),
    ({"matrix": np.array([["a", "b"], ["c", "d"]])}, "matrix holds <U1 values, not numbers"),
    ({"present": np.array(["no", "no"])}, "present holds <U2 values, not booleans"),
    ({"tokens": np.array([], dtype=str), "matrix": np.zeros((0, 2)), "present": np.zeros(0, bool)},
     "empty feature table \\(0 items x 2 columns\\)"),
    ({"matrix": np.zeros((2, 0))}, "empty feature table \\(2 items x 0 columns\\)"),
    ({"tokens": np.array([["a"], ["b"]])}, "item tokens have shape \\(2, 1\\), expected \\(n,\\)"),
    ({"tokens": np.array(["a", ""])}, "1 item tokens are empty"),
    ({"matrix": np.array([[1.0, np.inf], [1.0, 1.0]])}, "1 rows hold NaN or inf \\(first: item a\\)"),
    ({"matrix": np.array([[1.0, 1e300], [1.0, 1.0]])}, "1 rows hold NaN or inf \\(first: item a\\)"),
])
def test_load_refuses_bad_arrays_in_one_line(tmp_path, arrays, message):
    path = tmp_path / "f.npz"
    np.savez(path, **{"tokens": np.array(["a", "b"]), "matrix": np.ones((2, 2), np.float32),
                      "present": np.ones(2, bool), "meta": np.array("{}"), **arrays})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy warning would print a second line before the error
        with pytest.raises(QBertError, match=f"^{re.escape(str(path))}: {message}[^\n]*$"):
            FeatureTable.load(path)


def test_save_where_a_folder_or_file_is_in_the_way_is_one_line(tmp_path):
    (tmp_path / "f.npz").mkdir()
    (tmp_path / "x").write_text("")
    with pytest.raises(QBertError, match="f.npz: is a folder, cannot write a file there$"):
        table().save(tmp_path / "f.npz")
    with pytest.raises(QBertError, match=f"^{re.escape(str(tmp_path / 'x'))}: is a file, cannot write"):
        table().save(tmp_path / "x" / "f.npz")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["f.npz", "x"], "no temporary file left"

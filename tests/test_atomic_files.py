"""The one reader of converted datasets: where a dataset's folder is, and one-line errors naming file and line."""
import pytest

from fixtures.stage1 import write_shop
from recbole_qbert.config import PROJECT_ROOT
from recbole_qbert.data.atomic_files import dataset_folder, read_dataset, read_interactions, read_items
from recbole_qbert.errors import QBertError
from recbole_qbert.quantize.dataset_items import item_table, item_tokens

HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


def test_folder_of_a_dataset(tmp_path, in_tmp):
    assert dataset_folder("ml-100k", tmp_path).parent.name == "dataset_example", "always the wheel's copy"
    assert dataset_folder("shop", None) == PROJECT_ROOT / "build" / "atomic" / "shop"
    (tmp_path / "here").mkdir()
    assert dataset_folder("shop", "here").resolve() == tmp_path / "here" / "shop", "relative: from the working directory"
    assert dataset_folder("shop", "build/atomic") == PROJECT_ROOT / "build" / "atomic" / "shop", "else the project"


def test_the_stages_read_the_same_items(tmp_path):
    write_shop(tmp_path, with_images=False)
    read = read_dataset("shop", tmp_path)
    assert item_tokens("shop", tmp_path) == read.tokens.tolist() == ["A1", "A2", "A3", "A4", "A5", "A6"]
    table = item_table("shop", tmp_path)
    assert table.loc["A2", "title"] == 'Lip Balm "Cherry"' and list(table.columns) == list(read.item_types)
    (tmp_path / "shop" / "shop.item").unlink()
    assert item_table("shop", tmp_path) is None


@pytest.mark.parametrize("rows, message", [
    ("u1\ti1\t0\n\ti2\t1\n", r"bad.inter: line 3: empty user or item token"),
    ("u1\ti1\t0\nu1\ti2\tlater\n", r"bad.inter: line 3: timestamp is not a number"),
    ("u1\ti1\t0\nu1\ti2\n", r"bad.inter: line 3 has 2 fields, the header has 3"),  # not an empty timestamp
    ("u1\ti1\t0\n\nu1\ti2\t1\tx\n", r"bad.inter: line 4 has 4 fields, the header has 3"),
])
def test_bad_interaction_rows_are_named_by_line(tmp_path, rows, message):
    (tmp_path / "bad.inter").write_text(HEADER + rows)
    with pytest.raises(QBertError, match=message):
        read_interactions(tmp_path / "bad.inter")


def test_a_timestamp_column_can_be_required(tmp_path):
    (tmp_path / "bad.inter").write_text("user_id:token\titem_id:token\nu1\ti1\n")
    assert read_interactions(tmp_path / "bad.inter").times is None
    with pytest.raises(QBertError, match="bad.inter: line 1: header lacks column 'timestamp'"):
        read_interactions(tmp_path / "bad.inter", require_time=True)


@pytest.mark.parametrize("rows, message", [
    ("A1\tx\nA1\ty\n", "bad.item: line 3: item A1 appears twice"),
    ('A1\t"two\tlines\nhere"\n \tz\n', "bad.item: line 4: empty item token"),
])
def test_bad_item_rows_are_named_by_line(tmp_path, rows, message):
    (tmp_path / "bad.item").write_text("item_id:token\ttitle:token_seq\n" + rows)
    with pytest.raises(QBertError, match=message):
        read_items(tmp_path / "bad.item")


def test_missing_dataset_names_it_and_how_to_make_it(tmp_path):
    with pytest.raises(QBertError, match="dataset 'nope' not found: .*nope.inter: interaction file not found; "
                                         "convert it first"):
        read_dataset("nope", tmp_path)

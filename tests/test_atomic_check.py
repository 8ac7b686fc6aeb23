"""Bad atomic files fail before RecBole reads them, with one line naming the file."""
import re

import pytest

from recbole_qbert.errors import QBertError
from recbole_qbert.model_registry import resolve_model
from recbole_qbert.runner import run
from fixtures.tiny import tiny_overrides, write_tiny_dataset


def run_tiny(data_path, name="tiny", **extra):
    return run("SASRec", name, overrides=tiny_overrides(data_path, epochs=1, **extra),
               run_dir=data_path / "runs" / name)


def broken_dataset(tmp_path, content: str, name="broken"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / f"{name}.inter").write_text(content, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("content, message", [
    ("", "empty file"),
    ("user_id:token,item_id:token,timestamp:float\nu1,i1,0\n", "separated by commas"),
    ("user_id:token\titem_id:tokn\ttimestamp:float\nu1\ti1\t0\n", "header column 'item_id:tokn'"),
    ("user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\t0\nu1\ti2\n", "line 3 has 2 fields, the header has 3"),
    ("user_id:token\titem_id:token\ttimestamp:float\n", "no data rows"),
    ("user_id:token\titem_id:token\nu1\ti1\n", "load_col asks for ['timestamp']"),
    ("user_id:token\titem_id:token\titem_id:token\nu1\ti1\ti2\n", "header names column 'item_id' twice"),
    ("user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\t0\nu1\t\t1\n", "line 3: empty user or item token"),
    ("user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\t0\nu1\ti2\tnan\n", "line 3: timestamp is not a number"),
])
def test_malformed_inter_file(tmp_path, in_tmp, content, message):
    data = broken_dataset(tmp_path, content)
    with pytest.raises(QBertError) as err:
        run_tiny(data, "broken")
    assert "broken.inter" in str(err.value) and message in str(err.value)


def test_a_sound_inter_file_is_read_once(tmp_path, monkeypatch):
    from recbole_qbert import atomic_check
    from recbole_qbert.data import atomic_files

    data = broken_dataset(tmp_path, "user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\t0\nu1\ti2\t1\n", "ok")
    calls = []
    for module in (atomic_check, atomic_files):
        monkeypatch.setattr(module, "check_rows", lambda *a: calls.append(a))
    config = {"data_path": str(data / "ok"), "dataset": "ok", "field_separator": "\t", "load_col": None}
    assert list(atomic_check.check_atomic_files(config)["inter"]) == ["user_id", "item_id", "timestamp"]
    assert calls == [], "the row check is read_interactions' one pass; a second pass only names a bad row"


def test_unknown_dataset_names_the_folder(tmp_path, in_tmp):
    with pytest.raises(QBertError, match="dataset 'nosuch' not found: no folder .*nosuch"):
        run_tiny(tmp_path, "nosuch")


def test_folder_without_inter_file(tmp_path, in_tmp):
    (tmp_path / "empty").mkdir()
    with pytest.raises(QBertError, match=r"empty\.inter: atomic file not found"):
        run_tiny(tmp_path, "empty")


def test_a_file_that_is_not_utf8_is_named(tmp_path, in_tmp):
    data = broken_dataset(tmp_path, "")
    (data / "broken" / "broken.inter").write_bytes(b"user_id:token\titem_id:token\ttimestamp:float\nu\xe9\ti1\t0\n")
    with pytest.raises(QBertError, match=r"broken\.inter: not UTF-8 text"):
        run_tiny(data, "broken")


def test_a_failed_run_leaves_no_record_and_no_run_folder(tmp_path, in_tmp):
    data = broken_dataset(tmp_path, "user_id:token\titem_id:token\n")
    # refused by the atomic check, which runs after run.log is opened: the folder is cleaned up
    with pytest.raises(QBertError, match=r"broken\.inter: "):
        run_tiny(data, "broken")
    assert not (tmp_path / "runs").exists()


def test_time_order_without_the_time_field_loaded_is_one_line(tmp_path, in_tmp):
    """A hand-made dataset without <name>.yaml: RecBole's default load_col reads no timestamp."""
    write_tiny_dataset(tmp_path)
    with pytest.raises(QBertError, match="load_col does not load the time field 'timestamp'; add it to load_col inter"):
        run_tiny(tmp_path, load_col={"inter": ["user_id", "item_id"]})


def histories(users: int, length: int, items: int) -> str:
    """An .inter file: ``users`` users with ``length`` interactions each over ``items`` items."""
    return "user_id:token\titem_id:token\ttimestamp:float\n" + "".join(
        f"u{u}\ti{(3 * u + t) % items}\t{t}\n" for u in range(users) for t in range(length))


@pytest.mark.parametrize("model, length, items, message", [
    ("SASRec", 6, 7, "has 7 items, fewer than the top 20 the metrics rank (topk); lower topk"),
    ("SASRec", 3, 40, "the split leaves no validation interactions (30 users, 90 interactions); leave-one-out needs "
                      "users with at least 4 interactions for a sequential model"),
    ("BPR", 2, 40, "the split leaves no validation interactions (30 users, 60 interactions); leave-one-out needs "
                   "users with at least 3 interactions for a general model"),
])
def test_a_dataset_too_small_for_the_protocol_is_refused_before_training(tmp_path, in_tmp, model, length, items,
                                                                         message):
    """RecBole would train, then fail in torch.topk or evaluate nothing; one line before any training instead."""
    data = broken_dataset(tmp_path, histories(30, length, items), "small")
    with pytest.raises(QBertError, match=re.escape(f"dataset 'small' in {data / 'small'}: {message}")):
        run(model, "small", overrides=tiny_overrides(data, epochs=1), run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    # one interaction more per user (or items enough for the ranking) and the same run goes through
    data = broken_dataset(tmp_path, histories(30, length + 1, 40), "enough")
    assert run(model, "enough", overrides=tiny_overrides(data, epochs=1), run_dir=tmp_path / "ok")["test"]


def test_valid_tiny_dataset_passes_the_check(tmp_path):
    from recbole_qbert.atomic_check import check_atomic_files
    from recbole_qbert.config import build_config

    write_tiny_dataset(tmp_path)
    config = build_config(resolve_model("SASRec"), "tiny", overrides=tiny_overrides(tmp_path))
    assert check_atomic_files(config)["inter"] == {"user_id": "token", "item_id": "token", "timestamp": "float"}


def test_load_col_true_reads_every_column_and_still_checks_the_file(tmp_path):
    """RecBole reads ``load_col: {inter: True}`` as every column of the file."""
    from recbole_qbert.atomic_check import check_atomic_files
    from recbole_qbert.config import build_config

    write_tiny_dataset(tmp_path)
    config = build_config(resolve_model("SASRec"), "tiny", overrides=tiny_overrides(tmp_path, load_col={"inter": True}))
    assert set(check_atomic_files(config)["inter"]) == {"user_id", "item_id", "timestamp"}
    (tmp_path / "tiny" / "tiny.inter").write_text("user_id:token\titem_id:token\nu1\ti1\nu2\n")
    with pytest.raises(QBertError, match="line 3 has 1 fields"):
        check_atomic_files(config)

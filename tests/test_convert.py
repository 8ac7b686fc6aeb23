"""Tests of the raw-data converters (recbole_qbert.convert) and their CLI (dataset_prep.convert)."""
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import recbole_qbert  # noqa: F401  (numpy compatibility layer before RecBole is used)
from dataset_prep.convert import main
from fixtures.errors import one_line_error
from fixtures.raw_data import (ITEM_FILE, REVIEWS, S3REC_ITEMS, S3REC_NAMES, UNISREC_ITEMS, UNISREC_SEQUENCES,
                               UNISREC_USERS, review_lines, write_mcauley, write_p5, write_s3rec,
                               write_unisrec)
from recbole_qbert.convert.atomic_writer import write_dataset
from recbole_qbert.convert.kcore import kcore_filter
from recbole_qbert.convert.mcauley import convert_mcauley
from recbole_qbert.convert.s3rec import convert_s3rec
from recbole_qbert.convert.shared import SHARED_DATASETS
from recbole_qbert.convert.stats import EXPECTED
from recbole_qbert.convert.text import clean_text, parse_price, parse_quoted_list
from recbole_qbert.convert.unisrec import convert_unisrec
from recbole_qbert.errors import QBertError

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def read_atomic(path: Path) -> pd.DataFrame:
    """An atomic file read the way RecBole reads it (pandas, tab, CSV quoting), all values as text."""
    frame = pd.read_csv(path, sep="\t", engine="python", dtype=str, keep_default_na=False)
    frame.columns = [c.partition(":")[0] for c in frame.columns]
    return frame


def converted(out: Path, name: str):
    folder = out / name
    return read_atomic(folder / f"{name}.inter"), read_atomic(folder / f"{name}.item"), \
        json.loads((folder / f"{name}.meta.json").read_text())


def assert_clean_output(out: Path, name: str) -> None:
    """Four files, no temp files, the item file holds exactly the items of the interactions, and the
    dataset's YAML loads every column written."""
    inter, items, _ = converted(out, name)
    assert sorted(p.name for p in (out / name).iterdir()) == sorted(
        f"{name}.{suffix}" for suffix in ("inter", "item", "yaml", "meta.json"))
    settings = yaml.safe_load((out / name / f"{name}.yaml").read_text())
    assert settings["load_col"] == {"inter": list(inter.columns), "item": list(items.columns)}
    assert (settings["USER_ID_FIELD"], settings["ITEM_ID_FIELD"], settings["TIME_FIELD"]) == \
        ("user_id", "item_id", "timestamp")
    assert not list(out.rglob("*.tmp"))
    assert set(items["item_id"]) == set(inter["item_id"])
    assert items["item_id"].is_unique
    # rows sorted by user, then time
    keys = list(zip(inter["user_id"], inter["timestamp"].astype(float)))
    assert keys == sorted(keys)


# ---------------------------------------------------------------- text helpers

def test_clean_text_unescapes_html_once_and_flattens_whitespace():
    assert clean_text("Crabtree &amp; Evelyn\t\n Pond&#39;s  ") == "Crabtree & Evelyn Pond's"
    assert clean_text("&amp;amp;") == "&amp;"
    assert clean_text(None) == "" and clean_text(float("nan")) == ""


def test_parse_quoted_list_handles_apostrophes_and_commas():
    assert parse_quoted_list("'Beauty', \"Women's\", 'Creams, Gels & Lotions'") == [
        "Beauty", "Women's", "Creams, Gels & Lotions"]
    assert parse_quoted_list("") == []
    for text in ("'unterminated, 'x'", "1, 2"):
        with pytest.raises(ValueError, match=f"not a quoted list of names: {re.escape(repr(text))}"):
            parse_quoted_list(text)


def test_parse_price():
    assert parse_price("$1,299.00") == 1299.0
    assert parse_price("$10.99 - $15.99") == 10.99
    assert parse_price(3) == 3.0
    assert parse_price("") is None and parse_price(None) is None and parse_price(True) is None


# ---------------------------------------------------------------- k-core

def test_kcore_invariants_and_idempotence():
    rng = np.random.default_rng(0)
    inter = pd.DataFrame({"user_id": rng.integers(0, 300, 3000), "item_id": rng.zipf(1.6, 3000) % 400})
    core = kcore_filter(inter, 4)
    assert 0 < len(core) < len(inter)
    assert core["user_id"].value_counts().min() >= 4
    assert core["item_id"].value_counts().min() >= 4
    pd.testing.assert_frame_equal(kcore_filter(core, 4), core)
    # row order is kept
    assert core.index.is_monotonic_increasing


def test_kcore_cascades_and_handles_empty_result():
    # dropping item b (1 interaction) leaves user y with 1 interaction, which drops item a to 1
    inter = pd.DataFrame({"user_id": ["x", "x", "y", "y"], "item_id": ["a", "c", "a", "b"]})
    assert len(kcore_filter(inter, 2)) == 0
    assert len(kcore_filter(inter, 1)) == 4


# ---------------------------------------------------------------- McAuley JSON

@pytest.mark.parametrize("release", [2014, 2018])
@pytest.mark.parametrize("gz", [False, True])
def test_mcauley_order_duplicates_kcore_and_fields(tmp_path, release, gz):
    reviews, meta = write_mcauley(tmp_path / "raw", release, gz)
    assert (reviews.suffix == ".gz") == gz
    ds = convert_mcauley(reviews, meta, "tiny", kcore=2)
    write_dataset(ds, tmp_path / "out")
    assert_clean_output(tmp_path / "out", "tiny")
    inter, items, meta_record = converted(tmp_path / "out", "tiny")

    u1 = inter[inter["user_id"] == "u1"]
    # the duplicate u1-i1 keeps its earliest review (t=10); the t=20 tie keeps line order (i3, then i2)
    assert list(u1["item_id"]) == ["i1", "i3", "i2"]
    assert list(u1["timestamp"]) == ["10", "20", "20"]
    assert list(inter.loc[inter["user_id"] == "u3", "item_id"]) == ["i2", "i3", "i1"]
    # u4 and i9 have one review each; losing i9 takes u5 below k as well
    assert set(inter["user_id"]) == {"u1", "u2", "u3"} and set(inter["item_id"]) == {"i1", "i2", "i3"}
    notes = meta_record["notes"]
    assert notes["duplicate_user_item_reviews_dropped"] == 1
    assert notes["interactions_removed_by_kcore"] == 3
    assert meta_record["statistics"]["timestamps"] == "real"
    assert meta_record["statistics"]["interactions"] == 9

    item = items.set_index("item_id")
    assert item.loc["i1", "title"] == "Glue & Tape" and item.loc["i1", "brand"] == "Acme"
    if release == 2014:
        assert item.loc["i1", "categories"] == "Beauty Skin_Care Bath_&_Body"
        assert item.loc["i1", "image_url"] == "http://img/i1.jpg"
        assert item.loc["i2", "title"] == "Line break title"
        assert notes["repeated_metadata_asins"] == 1
        assert notes["items_without_metadata"] == 1  # i3
    else:
        assert item.loc["i1", "categories"] == "Industrial Tapes_&_Glue"
        assert item.loc["i1", "image_url"] == "http://img/big.jpg"
        assert float(item.loc["i1", "price"]) == 1299.0
        assert item.loc["i3", "title"] == "" and item.loc["i3", "price"] == ""
    assert notes["items_without_title"] == (1 if release == 2014 else 2)


@pytest.mark.parametrize("which, line, lineno", [
    ("reviews", "{not json", 3),
    ("reviews", json.dumps({"reviewerID": "u9", "asin": "i1"}), 3),
    ("reviews", json.dumps({"reviewerID": "u9", "asin": "i1", "unixReviewTime": "yesterday"}), 3),
    ("meta", "['a list', 'not a dict']", 2),
    ("meta", "{'title': 'no asin'}", 2),
])
def test_mcauley_malformed_line_names_file_and_line(tmp_path, which, line, lineno):
    reviews = review_lines()
    meta = [repr({"asin": "i1", "title": "ok"})]
    if which == "reviews":
        reviews.insert(lineno - 1, line)
    else:
        meta.insert(lineno - 1, line)
    reviews_path, meta_path = write_mcauley(tmp_path, 2014, gz=True, reviews=reviews, meta=meta)
    with pytest.raises(QBertError, match=rf"{(reviews_path if which == 'reviews' else meta_path).name}: "
                                         rf"line {lineno}: malformed record") as err:
        convert_mcauley(reviews_path, meta_path, "tiny", kcore=2)
    assert "\n" not in str(err.value)

    ds = convert_mcauley(reviews_path, meta_path, "tiny", kcore=2, skip_malformed=True)
    key = "malformed_review_lines_skipped" if which == "reviews" else "malformed_metadata_lines_skipped"
    assert ds.notes[key] == 1


def test_mcauley_corrupt_gzip_and_missing_file(tmp_path):
    reviews, meta = write_mcauley(tmp_path, 2018, gz=True)
    reviews.write_bytes(reviews.read_bytes()[:40])
    with pytest.raises(QBertError, match=reviews.name):
        convert_mcauley(reviews, meta, "tiny")
    with pytest.raises(QBertError, match="nope.json: file not found"):
        convert_mcauley(tmp_path / "nope.json", meta, "tiny")


# ---------------------------------------------------------------- S3Rec / P5

def test_s3rec_keys_timestamps_attributes_and_item_file(tmp_path):
    src = write_s3rec(tmp_path)
    ds = convert_s3rec(src, "tiny", item_file="Amazon_Beauty.item")
    write_dataset(ds, tmp_path / "out")
    assert_clean_output(tmp_path / "out", "tiny")
    inter, items, meta = converted(tmp_path / "out", "tiny")

    bob = inter[inter["user_id"] == "U_BOB"]
    assert list(bob["item_id"]) == [S3REC_ITEMS[i] for i in "2341"]
    assert list(bob["timestamp"]) == ["0", "1", "2", "3"]
    assert meta["statistics"]["timestamps"] == "ordinal"
    assert meta["arguments"] == {"src": str(src), "item_file": "Amazon_Beauty.item"}
    assert {s["path"] for s in meta["sources"]} >= {str(src / "Beauty.txt"), str(src / "Amazon_Beauty.item")}

    item = items.set_index("item_id")
    # attribute names resolved through datamaps (S3Rec renumbered after dropping rare ones)
    assert item.loc["B00000BBB2", "attributes"] == f"{S3REC_NAMES[1]} {S3REC_NAMES[3]}"
    # HTML unescaped in title and brand; quoted categories with an apostrophe and a comma
    assert item.loc["B00000AAA1", "title"] == "Crabtree & Evelyn Hand Cream"
    assert item.loc["B00000AAA1", "brand"] == "Crabtree & Evelyn"
    assert item.loc["B00000BBB2", "categories"] == "Beauty Fragrance Women's Creams,_Gels_&_Lotions"
    assert item.loc["B00000CCC3", "title"] == "Two line title"
    assert item.loc["B00000DDD4", "title"] == ""
    assert item.loc["B00000BBB2", "sales_rank"] == "" and float(item.loc["B00000AAA1", "sales_rank"]) == 120.0
    assert "B0000UNUSED" not in item.index
    assert meta["notes"]["items_without_title"] == 1
    assert meta["notes"]["item_file_rows_not_in_dataset"] == 1


def test_s3rec_unverifiable_attribute_names_become_opaque_tokens(tmp_path):
    src = write_s3rec(tmp_path, with_item_file=False)
    maps = json.loads((src / "datamaps.json").read_text())
    maps["attributeid2num"]["2"] = 99  # counts no longer line up with S3Rec's
    (src / "datamaps.json").write_text(json.dumps(maps))
    ds = convert_s3rec(src, "tiny")
    assert ds.item_fields == {"attributes": "token_seq"}
    assert dict(zip(ds.items["item_id"], ds.items["attributes"]))["B00000CCC3"] == "attr1 attr2 attr3"


def test_p5_layout_without_attributes(tmp_path, capsys):
    """P5: sequential_data.txt, id maps only, negative_samples.txt beside it; no attributes field and no
    note about attribute tokens."""
    src = write_p5(tmp_path)
    (src / "Amazon_Beauty.item").write_text(ITEM_FILE, encoding="utf-8")
    assert main(["s3rec", "--src", str(src), "--name", "tiny", "--out", str(tmp_path / "out"),
                 "--item-file", "Amazon_Beauty.item"]) == 0
    printed = capsys.readouterr().out
    assert "attributes: none (P5 layout)" in printed and "attr<id>" not in printed
    assert_clean_output(tmp_path / "out", "tiny")
    inter, items, meta = converted(tmp_path / "out", "tiny")
    s3rec = convert_s3rec(write_s3rec(tmp_path), "tiny").inter
    assert list(inter["item_id"]) == list(s3rec.sort_values(["user_id", "timestamp"], kind="stable")["item_id"])
    assert "attributes" not in items.columns
    assert items.set_index("item_id").loc["B00000AAA1", "title"] == "Crabtree & Evelyn Hand Cream"
    assert {s["path"] for s in meta["sources"]} == {str(src / n) for n in (
        "sequential_data.txt", "datamaps.json", "Amazon_Beauty.item")}


def test_empty_attributes_file_says_nothing_about_attribute_tokens(tmp_path, capsys):
    src = write_s3rec(tmp_path, with_item_file=False)
    (src / "Beauty_item2attributes.json").write_text("{}")
    assert main(["s3rec", "--src", str(src), "--name", "tiny", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "attributes: none (Beauty_item2attributes.json is empty)" in printed
    assert "unresolved" not in printed and "attr<id>" not in printed and "items_without_attributes" not in printed
    _, items, _ = converted(tmp_path / "out", "tiny")
    assert list(items.columns) == ["item_id"] and len(items) == len(S3REC_ITEMS)


def test_p5_layout_needs_one_sequence_file(tmp_path):
    src = write_p5(tmp_path)
    (src / "other.txt").write_text("1 1\n")
    with pytest.raises(QBertError, match=r"p5: no '\*_item2attributes.json' \(S3Rec layout\), so expected exactly "
                                         r"one sequence file .* found 2 \(other.txt, sequential_data.txt\)"):
        convert_s3rec(src, "tiny")
    (src / "Other_item2attributes.json").write_text("{}")
    (src / "More_item2attributes.json").write_text("{}")
    with pytest.raises(QBertError, match=r"expected at most one '\*_item2attributes.json', found 2"):
        convert_s3rec(src, "tiny")


@pytest.mark.parametrize("lines, message", [
    (["1 1 2", "2 2 x 4"], r"Beauty.txt: line 2: id 'x' is not"),
    (["1 1 2", "2\t2 3"], r"Beauty.txt: line 2: id '2\\t2' is not"),
    (["1 1 2", "2 2  3"], r"Beauty.txt: line 2: id '' is not"),
    (["1 1 2", "9 2 3"], r"Beauty.txt: line 2: user id 9 is not in datamaps.json"),
    (["1 1 7"], r"Beauty.txt: line 1: item id 7 is not in datamaps.json"),
    (["1 1 2", "1 3"], r"Beauty.txt: line 2: user id 1 appears on two lines"),
    (["1"], r"Beauty.txt: line 1: user 1 has no items"),
])
def test_s3rec_bad_sequence_lines(tmp_path, lines, message):
    src = write_s3rec(tmp_path, lines=lines, with_item_file=False)
    with pytest.raises(QBertError, match=message):
        convert_s3rec(src, "tiny")


def test_s3rec_missing_and_malformed_files(tmp_path):
    src = write_s3rec(tmp_path)
    with pytest.raises(QBertError, match="Other.item: file not found"):
        convert_s3rec(src, "tiny", item_file="Other.item")
    (src / "Amazon_Beauty.item").write_text(ITEM_FILE.replace("\t12.5\t", "\tcheap\t"))
    with pytest.raises(QBertError, match="Amazon_Beauty.item: line 2: could not convert"):
        convert_s3rec(src, "tiny", item_file="Amazon_Beauty.item")
    (src / "datamaps.json").write_text('{"id2user": {')
    with pytest.raises(QBertError, match="datamaps.json: line 1: invalid JSON"):
        convert_s3rec(src, "tiny")
    (src / "Beauty.txt").unlink()
    with pytest.raises(QBertError, match="Beauty.txt: file not found"):
        convert_s3rec(src, "tiny")


# ---------------------------------------------------------------- UniSRec

def test_unisrec_rebuilds_sequences_with_text(tmp_path):
    ds = convert_unisrec(write_unisrec(tmp_path), "tiny")
    write_dataset(ds, tmp_path / "out")
    assert_clean_output(tmp_path / "out", "tiny")
    inter, items, meta = converted(tmp_path / "out", "tiny")
    assert list(inter.loc[inter["user_id"] == "R_3", "item_id"]) == ["I_B", "I_C", "I_B", "I_D"]
    assert list(inter.loc[inter["user_id"] == "R_3", "timestamp"]) == ["0", "1", "2", "3"]
    assert len(inter) == sum(map(len, UNISREC_SEQUENCES.values()))
    text = dict(zip(items["item_id"], items["text"]))
    assert text["I_A"] == "Alpha glue. Industrial & Scientific. Gorilla."
    assert text["I_B"] == "Beta lid."
    assert meta["notes"]["repeated_user_item_pairs"] == 1


def test_unisrec_rebuilds_histories_cut_to_the_last_items(tmp_path):
    """UniSRec keeps the last 50 items of each history; here 3, so users 1 and 2 (5 and 7 items, one
    with a repeated window start) are only whole across the rows that overlap."""
    sequences = {0: [0, 1, 2, 3], 1: [4, 3, 2, 1, 0], 2: [1, 2, 1, 3, 1, 2, 4]}
    src = write_unisrec(tmp_path, sequences=sequences, cap=3)
    assert "2\t1 2 4\n" not in (src / "Scientific.test.inter").read_text()  # really cut
    write_dataset(convert_unisrec(src, "tiny"), tmp_path / "out")
    inter, _, _ = converted(tmp_path / "out", "tiny")
    for user, seq in sequences.items():
        got = list(inter.loc[inter["user_id"] == UNISREC_USERS[user], "item_id"])
        assert got == [UNISREC_ITEMS[i] for i in seq]


@pytest.mark.parametrize("split, edit, message", [
    ("train", lambda s: s.replace("1\t4 3\t2", "1\t4 0\t2"), r"train.inter: line 4: row of user 1"),
    ("valid", lambda s: s.replace("0\t0 1\t2", "0\t0 1\t4"), r"valid.inter: line 2: row of user 0"),
    ("train", lambda s: s.replace("1\t4 3\t2\n", ""), r"train.inter: user 1: training rows"),
    ("test", lambda s: s.replace("0\t0 1 2\t3", "0\t0 1 2\t9"), r"test.inter: line 2: user or item index out"),
    ("test", lambda s: s.replace("\t", ",", 1), r"test.inter: line 1: header"),
    ("item2index", lambda s: s.replace("I_B\t1", "I_B\tone"), r"item2index: line 2: index 'one'"),
])
def test_unisrec_inconsistent_splits(tmp_path, split, edit, message):
    src = write_unisrec(tmp_path)
    path = next(src.glob(f"*.{split}*"))
    path.write_text(edit(path.read_text()))
    with pytest.raises(QBertError, match=message):
        convert_unisrec(src, "tiny")


# ---------------------------------------------------------------- statistics and atomic writes

def test_statistics_mismatch_writes_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    ds = convert_s3rec(write_s3rec(tmp_path), "amazon-beauty", item_file="Amazon_Beauty.item")
    with pytest.raises(QBertError, match=r"3 users / 4 items / 9 interactions do not match the "
                                         r"published 22363 / 12101 / 198502"):
        write_dataset(ds, out)
    assert list(out.rglob("*")) == []
    # --no-check reports the mismatch but writes
    meta = write_dataset(ds, out, check=False)
    assert meta["published"] == {"expected": list(EXPECTED["amazon-beauty"]), "match": False}


@pytest.mark.parametrize("column, token", [("item_id", "B0\t1"), ("user_id", "U\n2"), ("item_id", "  ")])
def test_tokens_a_recbole_file_cannot_hold_are_refused_and_nothing_is_written(tmp_path, column, token):
    ds = convert_s3rec(write_s3rec(tmp_path), "tiny", item_file="Amazon_Beauty.item")
    ds.inter.loc[ds.inter.index[1], column] = token
    with pytest.raises(QBertError, match=rf"Beauty.txt.*: {column[:4]} token {re.escape(repr(token))} is blank or "
                                         "holds a tab or line break"):
        write_dataset(ds, tmp_path / "out")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").rglob("*")) == []


def test_failed_write_leaves_no_temp_or_partial_files(tmp_path, monkeypatch):
    ds = convert_unisrec(write_unisrec(tmp_path), "tiny")

    started = []

    def fail_midway(self, f, **kwargs):
        f.write("user_id:token\tpartial")
        started.append(f.name)
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(ds, tmp_path / "out")
    assert started, "the write began before it failed"
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


def test_output_round_trips_quotes_through_pandas(tmp_path):
    reviews, meta = write_mcauley(tmp_path, 2018, gz=False,
                                  meta=[json.dumps({"asin": "i1", "title": 'Comb 8" "wide"', "brand": '"Q"'})])
    write_dataset(convert_mcauley(reviews, meta, "tiny", kcore=2), tmp_path / "out")
    _, items, _ = converted(tmp_path / "out", "tiny")
    row = items.set_index("item_id").loc["i1"]
    assert row["title"] == 'Comb 8" "wide"' and row["brand"] == '"Q"'


# ---------------------------------------------------------------- CLI

def test_cli_converts_and_reports(tmp_path, capsys):
    reviews, meta = write_mcauley(tmp_path, 2014, gz=True)
    code = main(["mcauley", "--reviews", str(reviews), "--meta", str(meta), "--name", "tiny",
                 "--out", str(tmp_path / "out"), "--kcore", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "tiny: 3 users, 3 items, 9 interactions" in printed
    assert "no published figures" in printed
    assert_clean_output(tmp_path / "out", "tiny")


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    src = write_s3rec(tmp_path, lines=["1 1 2", "2 2,3"], with_item_file=False)
    assert main(["s3rec", "--src", str(src), "--name", "tiny", "--out", str(tmp_path / "out")]) == 2
    one_line_error(capsys, "Beauty.txt: line 2")
    assert main(["shared", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    one_line_error(capsys, "folder not found")


# ---------------------------------------------------------------- converted data runs as it is

# the review fixture plus item i4 for u1 and u2: a sequential model's leave-one-out needs users of four items
LONGER_REVIEWS = review_lines([*REVIEWS, ("u1", "i4", 40), ("u2", "i4", 60)])
CONVERTERS = {
    "mcauley": lambda raw: convert_mcauley(*write_mcauley(raw, 2018, gz=False, reviews=LONGER_REVIEWS), "conv",
                                           kcore=2),
    "s3rec": lambda raw: convert_s3rec(write_s3rec(raw), "conv", item_file="Amazon_Beauty.item"),
    "p5": lambda raw: convert_s3rec(write_p5(raw), "conv"),
    "unisrec": lambda raw: convert_unisrec(write_unisrec(raw), "conv"),
}


@pytest.mark.parametrize("converter", sorted(CONVERTERS))
def test_recbole_baseline_runs_on_converted_data_without_settings(converter, tmp_path, in_tmp):
    """The plain run_recbole.py command works on a converted dataset: load_col, field names and the rest
    come from the YAML the converter wrote (only the tiny catalogue needs smaller cut-offs)."""
    from recbole_qbert.runner import run

    write_dataset(CONVERTERS[converter](tmp_path / "raw"), tmp_path / "atomic")
    record = run("GRU4Rec", "conv", run_dir=tmp_path / "run", overrides={
        "data_path": str(tmp_path / "atomic"), "epochs": 1, "topk": [2], "valid_metric": "NDCG@2",
        "show_progress": False, "state": "WARNING"})
    inter, items, _ = converted(tmp_path / "atomic", "conv")
    assert record["data"]["interactions"] == len(inter)
    assert record["config"]["load_col"]["item"] == list(items.columns)
    assert set(record["test"]) == {"recall@2", "ndcg@2", "mrr@2"}


def test_project_dataset_settings_win_over_the_converted_ones(tmp_path):
    """properties/dataset/<name>.yaml is layered over the converter's YAML, so a shared dataset's config
    (and the hash its leaderboard records are reused by) is the same with or without that file."""
    from recbole_qbert.config import build_config
    from recbole_qbert.model_registry import resolve_model

    def beauty_config():
        return build_config(resolve_model("SASRec"), "amazon-beauty", overrides={"data_path": str(tmp_path)})

    before = beauty_config()
    (tmp_path / "amazon-beauty").mkdir()
    (tmp_path / "amazon-beauty" / "amazon-beauty.yaml").write_text(
        "load_col:\n  inter: [user_id, item_id, timestamp]\n  item: [item_id]\nITEM_ID_FIELD: item_id\n")
    after = beauty_config()
    assert after["load_col"]["item"] == before["load_col"]["item"] != ["item_id"]
    assert after.run_hash == before.run_hash
    (tmp_path / "amazon-beauty" / "amazon-beauty.yaml").write_text("load_columns: [item_id]\n")
    with pytest.raises(QBertError, match=r"amazon-beauty.yaml: unknown config key 'load_columns'"):
        beauty_config()


# ---------------------------------------------------------------- real shared data

needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} not present")
# (users, items, interactions) of each set as ../shared/data/README.md states them, written out here
# rather than read from the converter's own table, so an edit there cannot make a bad conversion pass
PUBLISHED = {
    "amazon-beauty": (22363, 12101, 198502),
    "amazon-sports": (35598, 18357, 296337),
    "amazon-scientific": (2928, 1585, 19712),
    "amazon-scientific-full": (8442, 4385, 59427),
}


@needs_shared
@pytest.mark.parametrize("spec", SHARED_DATASETS, ids=[s.name for s in SHARED_DATASETS])
def test_shared_dataset_matches_published_statistics(tmp_path, spec):
    meta = write_dataset(spec.convert(SHARED_DATA / spec.folder, spec.name), tmp_path)
    stats = meta["statistics"]
    assert (stats["users"], stats["items"], stats["interactions"]) == PUBLISHED[spec.name]
    assert EXPECTED[spec.name] == PUBLISHED[spec.name], "the converter's own check holds the same figures"
    assert meta["published"]["match"]
    assert_clean_output(tmp_path, spec.name)
    if spec.name == "amazon-beauty":
        assert meta["notes"]["items_without_title"] == 7
        assert meta["notes"]["attribute_names"].startswith("from datamaps")


@needs_shared
def test_recbole_loads_converted_beauty(tmp_path, monkeypatch):
    from recbole.config import Config
    from recbole.data import create_dataset

    spec = next(s for s in SHARED_DATASETS if s.name == "amazon-beauty")
    write_dataset(spec.convert(SHARED_DATA / spec.folder, spec.name), tmp_path / "atomic")
    monkeypatch.setattr(sys, "argv", sys.argv[:1])  # RecBole's Config parses --key=value from argv
    monkeypatch.chdir(tmp_path)
    config = Config(model="SASRec", dataset="amazon-beauty",
                    config_file_list=[str(REPO_ROOT / "properties" / "dataset" / "amazon-beauty.yaml")],
                    config_dict={"data_path": str(tmp_path / "atomic"), "train_neg_sample_args": None,
                                 "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO",
                                               "mode": "full", "group_by": "user"}})
    dataset = create_dataset(config)
    # RecBole counts a padding id
    assert (dataset.user_num, dataset.item_num, dataset.inter_num) == (22364, 12102, 198502)
    assert {"title", "categories", "brand", "price", "attributes"} <= set(dataset.item_feat.columns)

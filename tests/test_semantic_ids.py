"""Collision resolution, the semantic-ID file (write, validate, refuse), the stage-2 script end to end,
cold-start assignment, code explanations, and a smoke run on the real Scientific CLIP features."""
import hashlib
import json
import re

import numpy as np
import pytest

from dataset_prep import explain_codes, quantize
from recbole_qbert.errors import QBertError
from recbole_qbert.features import FeatureTable
from recbole_qbert.quantize.collisions import collision_stats, prefix_stats, resolve_extra_level, resolve_reassign
from recbole_qbert.quantize.explain import describe_prefix, level_summary, load_item_info
from recbole_qbert.quantize.stage import assign_new_items, run_train
from recbole_qbert.semantic_ids import (SemanticIDs, check_features_unchanged, meta_path, read_semantic_ids,
                                        write_semantic_ids)
from fixtures.errors import one_line_error
from fixtures.scientific_clip import SCIENTIFIC, scientific_clip_table
from fixtures.sid_data import small_settings, write_synth_dataset


pytestmark = pytest.mark.usefixtures("one_torch_thread")

CODES = np.array([[1, 2], [1, 2], [0, 0], [1, 2], [3, 1]])


# --- collisions ------------------------------------------------------------------------------------
def test_extra_level_makes_tuples_unique_best_item_first():
    resolved, size = resolve_extra_level(CODES, priority=np.array([0.5, 0.1, 0.0, 0.3, 0.0]))
    assert resolved[:, :2].tolist() == CODES.tolist(), "learned codes are kept"
    assert resolved[:, 2].tolist() == [2, 0, 0, 1, 0] and size == 3
    assert len({tuple(r) for r in resolved.tolist()}) == 5
    assert collision_stats(CODES)["colliding_items"] == 3 and collision_stats(resolved)["collision_rate"] == 0
    # a new item joining the [1, 2] group continues its numbering
    more, size = resolve_extra_level(np.array([[1, 2], [2, 2]]), taken=resolved.tolist())
    assert more[:, 2].tolist() == [3, 0] and size == 4


def test_reassign_moves_to_nearest_free_code_or_fails_when_full():
    candidates = np.array([[2, 3, 0, 1]] * 5)
    out = resolve_reassign(CODES, candidates, priority=np.array([0.5, 0.1, 0.0, 0.3, 0.0]))
    assert out.tolist() == [[1, 0], [1, 2], [0, 0], [1, 3], [3, 1]]
    with pytest.raises(QBertError, match="every last-level code under prefix \\[1\\] is taken"):
        resolve_reassign(np.array([[1, 0]] * 3), np.array([[0, 1]] * 3))


def test_prefix_stats():
    stats = prefix_stats(CODES)
    assert stats["1"] == {"distinct_prefixes": 3, "mean_items": 1.667, "median_items": 1.0, "max_items": 3,
                          "shared_prefixes": 1, "items_in_shared_prefixes": 3}
    assert collision_stats(CODES)["groups_by_size"] == {"3": 1}


# --- the file --------------------------------------------------------------------------------------
def sid(tokens=("a", "b", "c"), codes=((0, 1), (1, 0), (1, 1)), sizes=(2, 2), dataset="d"):
    return SemanticIDs(list(tokens), np.array(codes), list(sizes), {"dataset": dataset})


def test_write_read_round_trip(tmp_path):
    path = tmp_path / "d.sid"
    write_semantic_ids(path, sid(tokens=("c", "a", "b"), codes=((1, 1), (0, 1), (1, 0))))
    assert path.read_text().splitlines() == ["item_id:token\tcodes:token_seq", "a\t0 1", "b\t1 0", "c\t1 1"]
    back = read_semantic_ids(path, dataset="d", tokens=["b", "a", "c"])
    assert back.codebook_sizes == [2, 2] and back.by_token()["c"].tolist() == [1, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.sid", "d.sid.json"]


def rewrite(path, text):
    """Replace the .sid content and refresh the hash, as a buggy or foreign writer would."""
    path.write_text(text)
    meta = json.loads(meta_path(path).read_text())
    meta["sid_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    meta_path(path).write_text(json.dumps(meta))


@pytest.mark.parametrize("edit, message", [
    (lambda p: rewrite(p, "item_id:token\tcodes:token_seq\na\t0 1\nb\t0 1\nc\t1 1\n"), "duplicate code tuples"),
    (lambda p: rewrite(p, "item_id:token\tcodes:token_seq\na\t0 1\nb\t1 2\nc\t1 1\n"), "code 2 at level 2, outside 0..1"),
    (lambda p: rewrite(p, "item_id:token\tcodes:token_seq\na\t0 1\nb\t-1 0\nc\t1 1\n"), "outside"),
    (lambda p: rewrite(p, "item_id:token\tcodes:token_seq\na\t0 1\nb\t1\nc\t1 1\n"), "has 1 codes, expected 2"),
    (lambda p: rewrite(p, "item_id:token\tcodes:token_seq\na\t0 1\nc\t1 1\n"), "2 rows but the metadata says"),
    (lambda p: rewrite(p, "item\tcodes\na\t0 1\nb\t1 0\nc\t1 1\n"), "header must be"),
    (lambda p: p.write_text(p.read_text().replace("b\t1 0", "b\t1 1")), "does not match the sid_sha256"),
    (lambda p: p.write_bytes(p.read_bytes().replace(b"\n", b"\r\n")), "does not match the sid_sha256"),
    (lambda p: rewrite(p, "item_id:token\tcodes:token_seq\r\na\t0 1\r\nb\t1 0\r\nc\t1 1\r\n"),
     "d.sid: has Windows line ends"),
    (lambda p: meta_path(p).write_text("{not json"), "d.sid.json: not readable JSON"),
    (lambda p: meta_path(p).unlink(), "metadata of d.sid not found"),
    (lambda p: p.unlink(), "semantic-ID file not found"),
])
def test_bad_files_are_refused(tmp_path, edit, message):
    path = tmp_path / "d.sid"
    write_semantic_ids(path, sid())
    edit(path)
    with pytest.raises(QBertError, match=message):
        read_semantic_ids(path, dataset="d", tokens=["a", "b", "c"])


def edit_meta(path, **changes):
    """Change fields of the metadata (its sid_sha256 still matches the .sid)."""
    meta = json.loads(meta_path(path).read_text())
    meta.update(changes)
    meta_path(path).write_text(json.dumps(meta))


@pytest.mark.parametrize("changes, message", [
    ({"n_levels": 0, "codebook_sizes": []}, "n_levels must be a positive integer, not int 0"),
    ({"n_items": "3"}, "n_items must be a positive integer, not str '3'"),
    ({"n_items": True}, "n_items must be a positive integer, not bool True"),
])
def test_mistyped_metadata_is_refused_in_one_line(tmp_path, changes, message):
    path = tmp_path / "d.sid"
    write_semantic_ids(path, sid())
    edit_meta(path, **changes)
    with pytest.raises(QBertError, match=f"^{re.escape(str(meta_path(path)))}: {message}$"):
        read_semantic_ids(path, dataset="d", tokens=["a", "b", "c"])


@pytest.mark.parametrize("features", [{"tables": {"path": "x.npz"}}, {"tables": ["x.npz"]}, ["x.npz"],
                                      {"tables": [{"path": 5}]}])
def test_malformed_feature_records_are_refused_in_one_line(tmp_path, features):
    path = tmp_path / "d.sid"
    write_semantic_ids(path, sid(), {"features": features})
    with pytest.raises(QBertError, match=f"^{re.escape(str(meta_path(path)))}: features.tables is not a list"
                                         "[^\n]*$"):
        check_features_unchanged(read_semantic_ids(path))


def test_coverage_and_dataset_checks(tmp_path):
    path = tmp_path / "d.sid"
    write_semantic_ids(path, sid())
    with pytest.raises(QBertError, match="lacks semantic IDs for 1 of dataset 'd''s 4 items \\(e.g. z\\)"):
        read_semantic_ids(path, dataset="d", tokens=["a", "b", "c", "z"])
    with pytest.raises(QBertError, match="has 1 items dataset 'd' does not"):
        read_semantic_ids(path, dataset="d", tokens=["a", "b"])
    with pytest.raises(QBertError, match="made for dataset 'd', not 'other'"):
        read_semantic_ids(path, dataset="other")


def test_shuffled_ids_keep_the_code_structure_but_not_the_items(tmp_path, capsys):
    tokens = [f"t{i:02d}" for i in range(40)]
    codes = np.array([[i % 4, i // 4] for i in range(40)])
    path = tmp_path / "d.sid"
    write_semantic_ids(path, SemanticIDs(tokens, codes, [4, 10]), {"dataset": "d"})
    assert quantize.main(["shuffle", "--sid", str(path), "--out", str(tmp_path / "r.sid"), "--seed", "1"]) == 0
    assert "changed their first-level code" in capsys.readouterr().out
    base, shuffled = read_semantic_ids(path), read_semantic_ids(tmp_path / "r.sid", dataset="d", tokens=tokens)
    assert sorted(map(tuple, shuffled.codes.tolist())) == sorted(map(tuple, base.codes.tolist()))
    assert (shuffled.codes != base.codes).any(axis=1).mean() > 0.8
    assert shuffled.meta["kind"] == "shuffled" and shuffled.codebook_sizes == [4, 10]


def test_cli_bad_arguments_and_outputs_are_refused_before_any_work(synth, tmp_path, capsys):
    root, _, features = synth
    path = tmp_path / "d.sid"
    write_semantic_ids(path, sid())
    original = {p: p.read_bytes() for p in (path, meta_path(path))}
    (tmp_path / "taken.sid").mkdir()
    (tmp_path / "report").mkdir()
    train = ["train", "--dataset", "synth", "--features", str(features), "--data-path", str(root), "--quiet"]

    def fails(argv, message):
        before = sorted(p.name for p in tmp_path.iterdir())
        assert quantize.main(argv) == 2
        one_line_error(capsys, message)
        assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing half-written"

    fails(["shuffle", "--sid", str(path), "--out", str(tmp_path / "r.sid"), "--seed", "-1"],
          "--seed -1: expected an integer >= 0")
    fails(["shuffle", "--sid", str(path), "--out", str(tmp_path / "." / "d.sid")], "--out is the --sid file")
    fails(["shuffle", "--sid", str(path), "--out", str(tmp_path / "taken.sid")],
          "taken.sid: is a folder, cannot write a file there")
    fails(["assign", "--checkpoint", str(tmp_path / "x.safetensors"), "--features", str(features), "--out",
           str(path), "--base-sid", str(tmp_path / "." / "d.sid")], "--out is the --base-sid file")
    fails(["assign", "--checkpoint", str(tmp_path / "x.safetensors"), "--features", str(features), "--out",
           str(tmp_path / "taken.sid")], "taken.sid: is a folder, cannot write a file there")
    for threads in ("0", "-2"):
        fails(["assign", "--checkpoint", str(tmp_path / "x.safetensors"), "--features", str(features), "--out",
               str(tmp_path / "new.sid"), "--threads", threads], f"--threads {threads}: expected an integer >= 1")
    fails(train + ["--set", f"sid_file={tmp_path / 'taken.sid'}"], "taken.sid: is a folder, cannot write a file")
    fails(train + ["--set", f"sid_file={tmp_path / 'ok.sid'}", "--report", str(tmp_path / "report")],
          "report: is a folder, cannot write a file")
    fails(train + ["--set", f"sid_file={path / 'under' / 'x.sid'}"], "d.sid: is a file, cannot write")
    fails(train + ["--dataset", "synth"], "--dataset: each dataset once, got synth synth")
    assert {p: p.read_bytes() for p in original} == original and not list((tmp_path / "taken.sid").iterdir())


def test_invalid_semantic_ids_are_never_written(tmp_path):
    with pytest.raises(QBertError, match="duplicate code tuples"):
        write_semantic_ids(tmp_path / "x.sid", sid(codes=((0, 1), (0, 1), (1, 1))))
    with pytest.raises(QBertError, match="outside 0..1"):
        write_semantic_ids(tmp_path / "x.sid", sid(codes=((0, 1), (0, 2), (1, 1))))
    assert not list(tmp_path.iterdir())


# --- the stage -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    tokens, features = write_synth_dataset(root)
    return root, tokens, features


def test_stage_writes_unique_ids_report_and_is_byte_deterministic(synth, tmp_path):
    root, tokens, features = synth
    sid_path = tmp_path / "synth.sid"
    s = small_settings(features, sid_path)
    report = run_train("synth", s, data_path=str(root), report_path=tmp_path / "r.json", log=lambda m: None)
    files = {p: p.read_bytes() for p in (sid_path, meta_path(sid_path), tmp_path / "synth.rqvae.safetensors")}
    back = read_semantic_ids(sid_path, dataset="synth", tokens=tokens)
    assert back.n_levels == 3 and back.codebook_sizes[:2] == [8, 8]
    assert back.meta["features"]["content_hash"] == FeatureTable.load(features).content_hash()
    assert report["collisions"]["before"]["collision_rate"] > 0, "120 items in 64 tuples must collide"
    assert report["collisions"]["after"]["collision_rate"] == 0
    assert {lv["level"] for lv in report["levels"]} == {1, 2} and 0 < report["levels"][0]["utilisation"] <= 1
    assert report["reconstruction"]["mse"] > 0 and set(report["prefixes"]) == {"1", "2"}
    assert json.loads((tmp_path / "r.json").read_text())["outputs"]["sid_sha256"] == back.meta["sid_sha256"]

    run_train("synth", s, data_path=str(root), log=lambda m: None)
    assert all(p.read_bytes() == b for p, b in files.items()), "same seed, same files byte for byte"


def test_stage_refuses_bad_inputs(synth, tmp_path):
    root, tokens, features = synth
    with pytest.raises(QBertError, match="120 items but codebook_size 256"):
        run_train("synth", small_settings(features, tmp_path / "x.sid", codebook_size=256), data_path=str(root))
    other = tmp_path / "other.npz"
    FeatureTable([f"o{k}" for k in range(120)], np.ones((120, 4)), np.ones(120, bool)).save(other)
    with pytest.raises(QBertError, match="another item set"):
        run_train("synth", small_settings(other, tmp_path / "x.sid"), data_path=str(root))
    nan = np.ones((120, 4), np.float32)
    nan[5, 2] = np.nan
    np.savez(tmp_path / "nan.npz", tokens=np.array(tokens), matrix=nan, present=np.ones(120, bool),
             meta=np.array("{}"))
    with pytest.raises(QBertError, match="1 rows hold NaN or inf"):
        run_train("synth", small_settings(tmp_path / "nan.npz", tmp_path / "x.sid"), data_path=str(root))
    absent = FeatureTable.load(features)
    absent.present[3] = False
    absent.save(tmp_path / "absent.npz")
    with pytest.raises(QBertError, match="1 items have no content"):
        run_train("synth", small_settings(tmp_path / "absent.npz", tmp_path / "x.sid"), data_path=str(root))
    assert not (tmp_path / "x.sid").exists()


def test_cli_train_assign_and_explain(synth, tmp_path, capsys):
    root, tokens, features = synth
    sid_path = tmp_path / "synth.sid"
    args = ["train", "--dataset", "synth", "--features", str(features), "--data-path", str(root), "--quiet",
            "--set", f"sid_file={sid_path}", "--set", "n_levels=2", "--set", "codebook_size=8",
            "--set", "code_dim=8", "--set", "hidden_dims=[32]", "--set", "epochs=3"]
    assert quantize.main(args) == 0
    out = capsys.readouterr().out
    assert "level 1:" in out and "collisions (extra_level)" in out
    report = json.loads((tmp_path / "synth.report.json").read_text())
    assert report["command"].startswith("python -m dataset_prep.quantize train --dataset synth")
    assert report["examples"]["category_field"] == "categories"

    # cold start: new items get codes from their content alone, avoiding the existing tuples
    table = FeatureTable.load(features)
    FeatureTable(["new1", "new2"], table.matrix[[0, 1]], np.ones(2, bool)).save(tmp_path / "new.npz")
    ckpt = tmp_path / "synth.rqvae.safetensors"
    assert quantize.main(["assign", "--checkpoint", str(ckpt), "--features", str(tmp_path / "new.npz"),
                          "--out", str(tmp_path / "new.sid"), "--base-sid", str(sid_path)]) == 0
    base = read_semantic_ids(sid_path)
    new = read_semantic_ids(tmp_path / "new.sid")
    assert new.meta["kind"] == "cold_start"
    assert new.codes[0, :2].tolist() == base.by_token()["s000"][:2].tolist(), "same content, same prefix"
    assert not {tuple(c) for c in new.codes.tolist()} & {tuple(c) for c in base.codes.tolist()}
    with pytest.raises(QBertError, match="new \\(cold-start\\) items only"):
        read_semantic_ids(tmp_path / "new.sid", tokens=["new1", "new2"])
    with pytest.raises(QBertError, match="already have semantic IDs"):
        assign_new_items(ckpt, features, tmp_path / "again.sid", base_sid=sid_path)

    code = str(base.by_token()["s000"][0])
    assert explain_codes.main(["prefix", "--dataset", "synth", "--sid", str(sid_path), "--data-path", str(root),
                               code]) == 0
    out = capsys.readouterr().out
    assert f"prefix [{code}]:" in out and "Product 0 of cluster 0" in out
    assert explain_codes.main(["summary", "--dataset", "synth", "--sid", str(sid_path), "--data-path",
                               str(root), "--top", "3"]) == 0
    assert "level 1:" in capsys.readouterr().out
    assert explain_codes.main(["prefix", "--dataset", "synth", "--sid", str(sid_path), "--data-path",
                               str(root), "99"]) == 2
    one_line_error(capsys, "prefix [99]: code 99 at level 1 is outside 0..7")
    assert quantize.main(["train", "--dataset", "nope", "--data-path", str(root), "--features",
                          str(features)]) == 2
    one_line_error(capsys, "dataset 'nope' not found")


def test_explanations_group_by_category(synth, tmp_path):
    root, tokens, _ = synth
    codes = np.array([[k % 6, k // 6] for k in range(120)])  # level 1 = the item's cluster
    s = SemanticIDs(tokens, codes, [6, 20], {"dataset": "synth"})
    info = load_item_info("synth", str(root))
    assert info.title_field == "title" and info.category_field == "categories"
    summary = level_summary(s, info, top=2)
    assert summary[0]["purity"] == 1.0 and summary[0]["purity_shuffled"] < 0.5
    assert summary[0]["largest_groups"][0]["top_category"] == "Cat 0"
    described = describe_prefix(s, [2], info, limit=3)
    assert described["n_items"] == 20 and described["top_categories"][0] == ["Cat 2", 20]
    assert described["items"][0]["title"] == "Product 2 of cluster 2"


# --- real data -------------------------------------------------------------------------------------
@pytest.mark.skipif(not (SCIENTIFIC / "Scientific.feat1CLS").is_file(), reason="shared data not available")
def test_real_scientific_clip_features_smoke(tmp_path):
    from recbole_qbert.quantize.settings import load_settings
    from recbole_qbert.quantize.stage import quantize as quantize_matrix

    table = scientific_clip_table()
    assert table.matrix.shape == (1585, 1024)
    s = load_settings(overrides={"epochs": 2, "hidden_dims": [128], "kmeans_iters": 5})
    result = quantize_matrix(table.matrix, s)
    assert result["codes"].shape == (1585, 3) and result["codebook_sizes"][:3] == [256, 256, 256]
    assert len({tuple(r) for r in result["resolved"].tolist()}) == 1585
    assert len(np.unique(result["codes"][:, 0])) > 100, "k-means init spreads items over the first level"


def test_unisrec_text_gives_titles_and_category_paths():
    from recbole_qbert.quantize.explain import _text_fields

    titles, cats = _text_fields({
        "a": "Glue, 8 oz. Industrial & Scientific Tapes Glue. Gorilla.",
        "b": "No. 2 Pencil. Industrial & Scientific Office Pens. St. Gobain.",
        "c": "Wipes. . Kim.",
        "d": "Pen. Industrial & Scientific Office Pens. Bic.",
    })
    assert titles == {"a": "Glue, 8 oz", "b": "No. 2 Pencil", "c": "Wipes", "d": "Pen"}
    assert cats == {"a": ["Tapes Glue"], "b": ["Office Pens"], "c": [], "d": ["Office Pens"]}


def test_several_feature_tables_are_concatenated_in_the_dataset_order(tmp_path):
    from recbole_qbert.quantize.stage import load_features

    FeatureTable(["b", "a"], [[2.0], [1.0]], [True, True], {"view": "text"}).save(tmp_path / "t.npz")
    FeatureTable(["a", "b"], [[10.0, 11.0], [20.0, 21.0]], [True, False], {"view": "image"}).save(tmp_path / "i.npz")
    table = load_features([tmp_path / "t.npz", tmp_path / "i.npz"], ["a", "b"], "zeros")
    assert table.matrix.tolist() == [[1.0, 10.0, 11.0], [0.0, 0.0, 0.0]] and table.present.tolist() == [True, False]
    assert [t["meta"]["view"] for t in table.meta["tables"]] == ["text", "image"]
    with pytest.raises(QBertError, match="1 items have no content \\(e.g. b\\)"):
        load_features([tmp_path / "t.npz", tmp_path / "i.npz"], ["a", "b"], "error")


def test_category_values_most_items_carry_are_ignored():
    from recbole_qbert.quantize.explain import _drop_ubiquitous

    cats = {"a": ["root", "x"], "b": ["root", "y"], "c": ["root", "x"], "d": ["z"]}
    assert _drop_ubiquitous(cats) == {"a": ["x"], "b": ["y"], "c": ["x"], "d": ["z"]}

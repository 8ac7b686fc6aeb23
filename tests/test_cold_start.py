"""Cold start: held-out items leave training entirely, get codes from a quantizer that never saw them,
and are evaluated on the test events they are the target of."""
import numpy as np
import pandas as pd
import pytest

from dataset_prep import cold_start
from fixtures.errors import one_line_error
from fixtures.ranking import best_model, full_ranking_metrics
from fixtures.sid_data import small_settings, write_synth_dataset
from fixtures.tiny import tiny_overrides, write_tiny_dataset, write_tiny_semantic_ids
from recbole_qbert.data.cold_start import COLD_ITEMS_FILE, read_item_list
from recbole_qbert.errors import QBertError
from recbole_qbert.quantize.checkpoint import load_quantizer
from recbole_qbert.quantize.stage import run_train
from recbole_qbert.quantize.train import assign_codes
from recbole_qbert.features import FeatureTable
from recbole_qbert.runner import run
from recbole_qbert.semantic_ids import read_semantic_ids

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cold_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cold")
    write_tiny_dataset(root)
    assert cold_start.main(["--dataset", "tiny", "--data-path", str(root), "--share", "0.2", "--seed", "1"]) == 0
    return root


def _inter(path):
    frame = pd.read_csv(path, sep="\t", dtype=str)
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


def test_held_out_items_appear_only_as_last_items(cold_data):
    cold = set(read_item_list(cold_data / "tiny-cold" / COLD_ITEMS_FILE))
    before, after = _inter(cold_data / "tiny" / "tiny.inter"), _inter(cold_data / "tiny-cold" / "tiny-cold.inter")
    assert len(cold) == 6 and len(after) < len(before)
    after["t"] = after["timestamp"].astype(float)
    last = after.sort_values(["user_id", "t"]).groupby("user_id").tail(1)
    assert set(after["item_id"][after["item_id"].isin(cold)].index) <= set(last.index), "cold only as last items"
    assert set(after["item_id"]) == set(before["item_id"]) and set(after["user_id"]) == set(before["user_id"])
    assert last["item_id"].isin(cold).any()


def test_split_keeps_the_converters_settings(tmp_path):
    """The converter's YAML (load_col, field names) comes along, so the split loads as its source does."""
    folder = write_tiny_dataset(tmp_path)
    (folder / "tiny.yaml").write_text("load_col:\n  inter: [user_id, item_id, timestamp]\n")
    assert cold_start.main(["--dataset", "tiny", "--data-path", str(tmp_path), "--share", "0.2"]) == 0
    assert (tmp_path / "tiny-cold" / "tiny-cold.yaml").read_text() == (folder / "tiny.yaml").read_text()


def test_bad_split_requests_are_refused(cold_data, capsys):
    assert cold_start.main(["--dataset", "tiny", "--data-path", str(cold_data), "--share", "1.5"]) == 2
    one_line_error(capsys, "share of held-out items must be in (0, 1)")
    assert cold_start.main(["--dataset", "nope", "--data-path", str(cold_data)]) == 2
    one_line_error(capsys, f"{cold_data / 'nope' / 'nope.inter'}: not found")


def test_subset_metrics_cover_the_events_with_a_cold_target(cold_data, tmp_path, in_tmp):
    cold_file = cold_data / "tiny-cold" / COLD_ITEMS_FILE
    sid = write_tiny_semantic_ids(tmp_path / "tiny-cold.sid", name="tiny-cold")
    record = run("QBERT4Rec", "tiny-cold", run_dir=tmp_path / "run", overrides=tiny_overrides(
        cold_data, sid_file=str(sid), epochs=1, test_subset_items=str(cold_file)))
    after = _inter(cold_data / "tiny-cold" / "tiny-cold.inter")
    after["t"] = after["timestamp"].astype(float)
    last = after.sort_values(["user_id", "t"]).groupby("user_id").tail(1)
    subset = record["test_subset"]
    assert subset["events"] == int(last["item_id"].isin(read_item_list(cold_file)).sum()) > 0
    model, test = best_model("QBERT4Rec", "tiny-cold", cold_data, tmp_path / "run", sid_file=str(sid))
    cold_ids = test._dataset.token2id("item_id", read_item_list(cold_file))
    independent = full_ranking_metrics(model, test, targets=cold_ids)
    assert independent["users"] == subset["events"]
    assert subset["metrics"]["ndcg@10"] == pytest.approx(independent["ndcg@10"], abs=1e-4)
    assert subset["metrics"]["recall@10"] == pytest.approx(independent["recall@10"], abs=1e-4)
    assert record["inputs"]["test_subset_items"]

    (tmp_path / "unknown.txt").write_text("not-an-item\n")
    with pytest.raises(QBertError, match="1 items are not in dataset 'tiny-cold'"):
        run("QBERT4Rec", "tiny-cold", run_dir=tmp_path / "bad", overrides=tiny_overrides(
            cold_data, sid_file=str(sid), epochs=1, test_subset_items=str(tmp_path / "unknown.txt")))


def test_quantizer_holdout_codes_items_it_never_trained_on(tmp_path):
    root = tmp_path / "atomic"
    tokens, features = write_synth_dataset(root)
    holdout = tmp_path / "holdout.txt"
    holdout.write_text("\n".join(tokens[:12]) + "\n")
    sid_path = tmp_path / "synth.sid"
    run_train("synth", small_settings(features, sid_path, holdout_items=str(holdout)), data_path=str(root),
              log=lambda m: None)
    sid = read_semantic_ids(sid_path, dataset="synth", tokens=tokens)
    model, _ = load_quantizer(tmp_path / "synth.rqvae.safetensors")
    table = FeatureTable.load(features)
    codes = assign_codes(model, table.matrix[:12]).codes
    assert np.array_equal(np.stack([sid.by_token()[t][:2] for t in tokens[:12]]), codes), \
        "held-out items keep the trained quantizer's codes; only the extra level tells them apart"
    holdout.write_text("stranger\n")
    with pytest.raises(QBertError, match="1 items are not in 'synth'"):
        run_train("synth", small_settings(features, tmp_path / "x.sid", holdout_items=str(holdout)),
                  data_path=str(root), log=lambda m: None)

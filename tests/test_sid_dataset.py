"""SemanticIDDataset: RecBole picks it for a model that names it, with codes aligned to internal ids;
files for other datasets or item sets are refused before training."""
import numpy as np
import pytest

from recbole_qbert.config import build_config
from recbole_qbert.data import SemanticIDDataset
from recbole_qbert.errors import QBertError
from recbole_qbert.runner import run
from recbole_qbert.semantic_ids import SemanticIDs, write_semantic_ids
from fixtures.sid_data import SIDProbe
from fixtures.tiny import tiny_overrides


pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOKENS = [f"i{k}" for k in range(30)]


def tiny_sid(path, tokens=TOKENS, dataset="tiny"):
    """Three levels: item k -> (k % 3, k // 3 % 5, k // 15), all distinct."""
    k = np.array([int(t[1:]) for t in tokens])
    codes = np.stack([k % 3, k // 3 % 5, k // 15], axis=1)
    write_semantic_ids(path, SemanticIDs(tokens, codes, [3, 5, 3], {"dataset": dataset}))
    return dict(zip(tokens, codes.tolist()))


@pytest.fixture
def probe(monkeypatch):
    from recbole_qbert import model_registry

    monkeypatch.setitem(model_registry.OWN_MODELS, "SIDProbe", ("fixtures.sid_data", "SIDProbe"))
    SIDProbe.seen.clear()
    return SIDProbe


def test_runner_picks_the_dataset_class_and_the_model_sees_aligned_codes(tiny_data, tmp_path, in_tmp, probe):
    expected = tiny_sid(tmp_path / "tiny.sid")
    record = run("SIDProbe", "tiny", overrides=tiny_overrides(tiny_data, epochs=1, sid_file=str(tmp_path / "tiny.sid")),
                 run_dir=tmp_path / "run")
    assert record["epochs_trained"] == 1
    model, dataset = probe.seen[0]
    assert isinstance(dataset, SemanticIDDataset)
    codes = model.item_codes
    assert codes.shape == (31, 3) and codes.dtype.is_floating_point is False
    assert codes[0].tolist() == [0, 0, 0], "row 0 is RecBole's padding item"
    tokens = dataset.field2id_token["item_id"]
    assert tokens[0] == "[PAD]"
    for internal_id in range(1, 31):
        assert codes[internal_id].tolist() == [c + 1 for c in expected[tokens[internal_id]]]
    assert dataset.sid_codebook_sizes == [3, 5, 3] and dataset.sid_n_levels == 3


def config_for(tiny_data, sid_file):
    return build_config(SIDProbe, "tiny", overrides=tiny_overrides(tiny_data, sid_file=str(sid_file)))


@pytest.mark.parametrize("make, message", [
    (lambda p: tiny_sid(p, TOKENS[:-1]), "lacks semantic IDs for 1 of dataset 'tiny''s 30 items \\(e.g. i29\\)"),
    (lambda p: tiny_sid(p, TOKENS + ["i30", "i31"]), "has 2 items dataset 'tiny' does not"),
    (lambda p: tiny_sid(p, dataset="beauty"), "made for dataset 'beauty', not 'tiny'"),
    (lambda p: None, "semantic-ID file not found"),
])
def test_mismatched_files_are_refused_before_training(tiny_data, tmp_path, in_tmp, make, message):
    make(tmp_path / "tiny.sid")
    with pytest.raises(QBertError, match=message):
        SemanticIDDataset(config_for(tiny_data, tmp_path / "tiny.sid"))


def test_runner_reports_a_missing_file_as_one_line(tiny_data, tmp_path, in_tmp, probe):
    with pytest.raises(QBertError, match="tiny.sid: semantic-ID file not found; run `python -m dataset_prep.quantize"):
        run("SIDProbe", "tiny", overrides=tiny_overrides(tiny_data, sid_file=str(tmp_path / "tiny.sid")),
            run_dir=tmp_path / "run")
    assert not probe.seen, "no model was built"
